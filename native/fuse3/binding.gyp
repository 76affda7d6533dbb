{
  "targets": [
    {
      "target_name": "fuse3",
      "sources": ["src/addon.c", "src/reply.c", "src/ops.c", "src/session.c", "src/tables.c", "src/nmap.c", "src/nio.c", "src/nmap_js.c"],
      "defines": ["FUSE_USE_VERSION=314", "NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers", "<!@(pkg-config --cflags fuse3)"],
      "libraries": ["<!@(pkg-config --libs fuse3)", "-lm"]
    }
  ]
}
