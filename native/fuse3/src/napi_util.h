/* Small N-API helpers shared by the addon's files (JS thread only). */
#ifndef VSTOR_NAPI_UTIL_H
#define VSTOR_NAPI_UTIL_H

#include "fuse3.h"

#include <stdlib.h>

#define THROW(msg) \
  do { \
    napi_throw_error(env, NULL, msg); \
    return NULL; \
  } while (0)

static inline session_t *sess(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return p;
}
static inline double num(napi_env env, napi_value v) {
  double d = 0;
  napi_get_value_double(env, v, &d);
  return d;
}
static inline napi_value boolean(napi_env env, int b) {
  napi_value v;
  napi_get_boolean(env, b, &v);
  return v;
}
static inline char *str_dup(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (s) napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}

/* Claim the record for (handle, id, ...) arguments; NULL when it was answered already. */
#endif
