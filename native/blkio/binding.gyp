{
  "targets": [
    {
      "target_name": "blkio",
      "sources": ["blkio.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE", "_FILE_OFFSET_BITS=64"],
      "cflags": ["-Wall", "-Wextra", "-Werror=implicit-function-declaration", "-O2"]
    }
  ]
}
