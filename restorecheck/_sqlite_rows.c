/*
 * restorecheck._sqlite_rows: the sqlite-keyed-sha256-v2 row encoding as one C aggregate function of
 * SQLite, so that a checksum costs about what reading the table costs.
 *
 *     restorecheck_rows(key, v1, v2, ...)  -> BLOB
 *
 * returns, for the rows it aggregates in the order SQLite feeds them, exactly the bytes that
 * ``group_concat(<row_sql>, char(10))`` returns with the SQL encoding of restorecheck/engines/sqlite.py
 * (``value_sql``/``row_sql``, version 2): each row's values joined by ',', rows joined by '\n';
 * a value is NULL, an INTEGER in decimal (quote()), a REAL as 'F' and the 16 upper-case hex digits of
 * its big-endian IEEE 754 bits (-0.0 and 0.0 as F0000000000000000), TEXT as 'T<n>:<text>' (n the
 * byte length in the database's encoding, the text in UTF-8 as SQLite converts it), a BLOB as
 * X'<HEX>'. The SQL encoding stays the reference and the fallback; tests hold the two equal.
 * Text that is not valid UTF-16 in a UTF-16 database is refused ("not valid UTF-16"): SQLite renders
 * it together with what follows it in the row or the chunk, which no value-by-value encoder can
 * reproduce, so the caller checksums such a table by SQL.
 * ``key`` is not encoded: when it is an INTEGER it must grow strictly from row to row, or the
 * function fails with "rows out of key order" (the caller then reads the table the slow, ordered
 * way): a query plan that fed rows in another order can never yield a checksum.
 *
 * Why this shape: Python's sqlite3 module cannot load an SQLite extension here (it is built without
 * enable_load_extension), so this module registers the function itself on the connection's
 * sqlite3* handle, which CPython keeps as the first field of sqlite3.Connection (unchanged from
 * 3.6 to 3.14). The SQLite functions are looked up with dlsym in the very library that the _sqlite3
 * module uses (its path is passed in), so no header or link-time library is needed, and no other
 * SQLite can be called by mistake. No Python code runs inside SQLite: a signal (SIGTERM, Ctrl-C) is
 * handled by Python as soon as the statement step returns.
 *
 * Memory: one growing buffer per aggregate, capped at the connection's SQLITE_LIMIT_LENGTH (as
 * group_concat is: "string or blob too big"), released by SQLite (xFinal always runs) into a
 * one-buffer spare slot that the next aggregate takes (see buf_release).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct sqlite3 sqlite3;
typedef struct sqlite3_context sqlite3_context;
typedef struct sqlite3_value sqlite3_value;
typedef long long sqlite3_int64;

#define RC_SQLITE_OK 0
#define RC_SQLITE_UTF8 1
#define RC_SQLITE_INTEGER 1
#define RC_SQLITE_FLOAT 2
#define RC_SQLITE_TEXT 3
#define RC_SQLITE_BLOB 4
#define RC_SQLITE_NULL 5
#define RC_SQLITE_LIMIT_LENGTH 0

typedef void (*step_fn)(sqlite3_context *, int, sqlite3_value **);
typedef void (*final_fn)(sqlite3_context *);

static struct {
    int (*create_function_v2)(sqlite3 *, const char *, int, int, void *,
                              step_fn, step_fn, final_fn, void (*)(void *));
    void *(*aggregate_context)(sqlite3_context *, int);
    void *(*user_data)(sqlite3_context *);
    int (*value_type)(sqlite3_value *);
    sqlite3_int64 (*value_int64)(sqlite3_value *);
    double (*value_double)(sqlite3_value *);
    const unsigned char *(*value_text)(sqlite3_value *);
    const void *(*value_text16)(sqlite3_value *);
    const void *(*value_blob)(sqlite3_value *);
    int (*value_bytes)(sqlite3_value *);
    int (*value_bytes16)(sqlite3_value *);
    void (*result_blob)(sqlite3_context *, const void *, int, void (*)(void *));
    void (*result_error_nomem)(sqlite3_context *);
    void (*result_error_toobig)(sqlite3_context *);
    void (*result_error)(sqlite3_context *, const char *, int);
    int (*limit)(sqlite3 *, int, int);
    const char *(*errmsg)(sqlite3 *);
    int ready;
} api;

/* what one registration knows: the database's text encoding and the length limit */
typedef struct {
    int utf16;
    size_t max_len;
} config_t;

/* 4 configurations (utf8/utf16 x registered limit) would do; one per registration is simpler and
 * lives as long as the function (freed by SQLite through the destructor below) */
static void free_config(void *p) { free(p); }

typedef struct {
    unsigned char *buf;
    size_t len, cap;
    int rows;
    int failed; /* 1: out of memory, 2: too big, 3: out of key order, 4: text not valid UTF-16 */
    int have_last;
    sqlite3_int64 last;
} agg_t;

/* Result buffers are reused: a chunk's buffer, once SQLite is done with it (buf_release, its
 * destructor), is parked in ``spare`` for the next chunk, instead of being freed and allocated
 * again. Freshly allocated megabytes cost a page fault per 4 KiB (glibc maps them anew, then trims
 * them away): measured 0.45 s of page faults per 256 MB of file, a third of the checksum. Each buffer
 * carries its capacity in a header before the bytes SQLite sees. One slot, swapped atomically
 * (connections may be used from several threads). */
#define HDR 16
static void *spare = NULL; /* a header, or NULL */

static size_t *hdr_of(unsigned char *data) { return (size_t *)(void *)(data - HDR); }

#define SPARE_MAX (64u << 20) /* a larger buffer (a chunk with a huge value) is freed, not kept */

static void buf_release(void *data) {
    if (!data) return;
    size_t *h = hdr_of(data);
    if (*h > SPARE_MAX) { free(h); return; }
    void *old = __atomic_exchange_n(&spare, (void *)h, __ATOMIC_ACQ_REL);
    free(old);
}

static int reserve(agg_t *a, size_t more, size_t max_len) {
    if (a->failed) return 0;
    if (more > max_len || a->len > max_len - more) { a->failed = 2; return 0; }
    size_t need = a->len + more;
    if (need <= a->cap) return 1;
    if (!a->buf) { /* the first bytes of this chunk: take the parked buffer, if any */
        size_t *h = __atomic_exchange_n(&spare, NULL, __ATOMIC_ACQ_REL);
        if (h) {
            a->buf = (unsigned char *)h + HDR;
            a->cap = *h;
            if (need <= a->cap) return 1;
        }
    }
    size_t cap = a->cap ? a->cap : 65536;
    while (cap < need) cap = cap > (SIZE_MAX - HDR) / 2 ? need : cap * 2;
    unsigned char *old = a->buf ? (unsigned char *)hdr_of(a->buf) : NULL;
    unsigned char *nh = realloc(old, HDR + cap);
    if (!nh) { a->failed = 1; return 0; }
    *(size_t *)(void *)nh = cap;
    a->buf = nh + HDR;
    a->cap = cap;
    return 1;
}

static const char HEX[] = "0123456789ABCDEF";

static void put(agg_t *a, const void *p, size_t n) { memcpy(a->buf + a->len, p, n); a->len += n; }

/* UTF-16 in the machine's byte order (sqlite3_value_text16), ``n`` bytes: an even length, and
 * every surrogate in a high-low pair */
static int valid_utf16(const void *p, int n) {
    if (n < 0 || n % 2 || (!p && n > 0)) return 0;
    const uint16_t *u = p;
    int units = n / 2;
    for (int i = 0; i < units; i++) {
        uint16_t c = u[i];
        if (c < 0xD800 || c > 0xDFFF) continue;
        if (c > 0xDBFF || i + 1 >= units || u[i + 1] < 0xDC00 || u[i + 1] > 0xDFFF) return 0;
        i++;
    }
    return 1;
}

static size_t decimal(char *out, sqlite3_int64 v) {
    char tmp[24];
    size_t n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do { tmp[n++] = (char)('0' + u % 10); u /= 10; } while (u);
    size_t k = 0;
    if (v < 0) out[k++] = '-';
    while (n) out[k++] = tmp[--n];
    return k;
}

static void rows_step(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    agg_t *a = api.aggregate_context(ctx, (int)sizeof(agg_t));
    if (!a) { api.result_error_nomem(ctx); return; }
    const config_t *cfg = api.user_data(ctx);
    size_t max_len = cfg->max_len;
    if (a->failed) return;
    if (argc < 1) { a->failed = 3; return; }
    if (api.value_type(argv[0]) == RC_SQLITE_INTEGER) {
        sqlite3_int64 k = api.value_int64(argv[0]);
        if (a->have_last && k <= a->last) { a->failed = 3; return; }
        a->last = k;
        a->have_last = 1;
    }
    if (a->rows++ > 0) {
        if (!reserve(a, 1, max_len)) return;
        a->buf[a->len++] = '\n';
    }
    for (int i = 1; i < argc; i++) {
        sqlite3_value *v = argv[i];
        if (i > 1) {
            if (!reserve(a, 1, max_len)) return;
            a->buf[a->len++] = ',';
        }
        switch (api.value_type(v)) {
        case RC_SQLITE_INTEGER: {
            char num[24];
            size_t n = decimal(num, api.value_int64(v));
            if (!reserve(a, n, max_len)) return;
            put(a, num, n);
            break;
        }
        case RC_SQLITE_FLOAT: {
            double d = api.value_double(v);
            uint64_t bits = 0;
            if (d != 0.0) memcpy(&bits, &d, sizeof bits); /* -0.0 and 0.0 alike */
            if (!reserve(a, 17, max_len)) return;
            a->buf[a->len++] = 'F';
            for (int s = 60; s >= 0; s -= 4) a->buf[a->len++] = (unsigned char)HEX[(bits >> s) & 15];
            break;
        }
        case RC_SQLITE_TEXT: {
            /* the byte length in the database's encoding (length(CAST(x AS BLOB))), then the text as
             * UTF-8; bytes16 first, then text, then bytes: each call may convert the value */
            int n16 = cfg->utf16 ? api.value_bytes16(v) : 0;
            if (cfg->utf16 && !valid_utf16(api.value_text16(v), n16)) {
                /* SQL converts invalid UTF-16 (a lone surrogate, an odd byte) with whatever follows
                 * it in the row or the chunk, which a value-by-value encoder cannot reproduce: the
                 * caller reads such a table through the SQL encoding instead */
                a->failed = 4;
                return;
            }
            const unsigned char *t = api.value_text(v);
            int n8 = api.value_bytes(v);
            if (!t && n8 > 0) { a->failed = 1; return; }
            char num[24];
            size_t n = decimal(num, cfg->utf16 ? n16 : n8);
            if (!reserve(a, 2 + n + (size_t)n8, max_len)) return;
            a->buf[a->len++] = 'T';
            put(a, num, n);
            a->buf[a->len++] = ':';
            if (n8 > 0) put(a, t, (size_t)n8);
            break;
        }
        case RC_SQLITE_BLOB: {
            const unsigned char *b = api.value_blob(v);
            int n = api.value_bytes(v);
            if (n < 0 || (!b && n > 0)) { a->failed = 1; return; }
            if ((size_t)n > (SIZE_MAX - 3) / 2 || !reserve(a, 3 + 2 * (size_t)n, max_len)) {
                if (!a->failed) a->failed = 2;
                return;
            }
            a->buf[a->len++] = 'X';
            a->buf[a->len++] = '\'';
            for (int j = 0; j < n; j++) {
                a->buf[a->len++] = (unsigned char)HEX[b[j] >> 4];
                a->buf[a->len++] = (unsigned char)HEX[b[j] & 15];
            }
            a->buf[a->len++] = '\'';
            break;
        }
        default: /* NULL */
            if (!reserve(a, 4, max_len)) return;
            put(a, "NULL", 4);
            break;
        }
    }
}

static void rows_final(sqlite3_context *ctx) {
    agg_t *a = api.aggregate_context(ctx, 0);
    if (!a) return; /* no row: NULL, as group_concat */
    if (a->failed) {
        buf_release(a->buf);
        a->buf = NULL;
        if (a->failed == 4) api.result_error(ctx, "restorecheck_rows: text that is not valid UTF-16", -1);
        else if (a->failed == 3) api.result_error(ctx, "restorecheck_rows: rows out of key order", -1);
        else if (a->failed == 2) api.result_error_toobig(ctx);
        else api.result_error_nomem(ctx);
        return;
    }
    if (a->rows == 0) { buf_release(a->buf); a->buf = NULL; return; }
    if (a->len > (size_t)INT32_MAX) { buf_release(a->buf); a->buf = NULL; api.result_error_toobig(ctx); return; }
    /* an empty result is still a (zero-length) value, not NULL */
    if (!a->buf && !reserve(a, 1, (size_t)-1)) { api.result_error_nomem(ctx); return; }
    unsigned char *buf = a->buf;
    a->buf = NULL;
    api.result_blob(ctx, buf, (int)a->len, buf_release);
}

#define LOAD(field, name)                                   \
    do {                                                    \
        *(void **)(&api.field) = dlsym(handle, name);       \
        if (!api.field) {                                   \
            PyErr_Format(PyExc_RuntimeError, "%s not found in %s", name, path); \
            return NULL;                                    \
        }                                                   \
    } while (0)

/* register(conn, connection_type, sqlite_module_path, utf16, name) -> None */
static PyObject *py_register(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *conn, *conn_type;
    const char *path, *name;
    int utf16;
    if (!PyArg_ParseTuple(args, "OOsps", &conn, &conn_type, &path, &utf16, &name)) return NULL;
    if (!PyType_Check(conn_type) || !PyObject_TypeCheck(conn, (PyTypeObject *)conn_type)) {
        PyErr_SetString(PyExc_TypeError, "not an sqlite3.Connection");
        return NULL;
    }
    if (!api.ready) {
        void *handle = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
        if (!handle) {
            PyErr_Format(PyExc_RuntimeError, "the sqlite3 module is not loaded from %s", path);
            return NULL;
        }
        LOAD(create_function_v2, "sqlite3_create_function_v2");
        LOAD(aggregate_context, "sqlite3_aggregate_context");
        LOAD(user_data, "sqlite3_user_data");
        LOAD(value_type, "sqlite3_value_type");
        LOAD(value_int64, "sqlite3_value_int64");
        LOAD(value_double, "sqlite3_value_double");
        LOAD(value_text, "sqlite3_value_text");
        LOAD(value_text16, "sqlite3_value_text16");
        LOAD(value_blob, "sqlite3_value_blob");
        LOAD(value_bytes, "sqlite3_value_bytes");
        LOAD(value_bytes16, "sqlite3_value_bytes16");
        LOAD(result_blob, "sqlite3_result_blob");
        LOAD(result_error_nomem, "sqlite3_result_error_nomem");
        LOAD(result_error_toobig, "sqlite3_result_error_toobig");
        LOAD(result_error, "sqlite3_result_error");
        LOAD(limit, "sqlite3_limit");
        LOAD(errmsg, "sqlite3_errmsg");
        api.ready = 1;
    }
    /* CPython's pysqlite_Connection: PyObject_HEAD, then sqlite3 *db (NULL once closed) */
    sqlite3 *db = *(sqlite3 **)((char *)conn + sizeof(PyObject));
    if (!db) {
        PyErr_SetString(PyExc_ValueError, "the connection is closed");
        return NULL;
    }
    config_t *cfg = malloc(sizeof *cfg);
    if (!cfg) return PyErr_NoMemory();
    cfg->utf16 = utf16;
    int lim = api.limit(db, RC_SQLITE_LIMIT_LENGTH, -1);
    cfg->max_len = lim > 0 ? (size_t)lim : 1000000000u;
    int rc = api.create_function_v2(db, name, -1, RC_SQLITE_UTF8, cfg, NULL, rows_step, rows_final, free_config);
    if (rc != RC_SQLITE_OK) {
        /* on failure SQLite has already called the destructor on cfg */
        PyErr_Format(PyExc_RuntimeError, "sqlite3_create_function_v2: %s", api.errmsg(db));
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"register", py_register, METH_VARARGS,
     "register(conn, connection_type, sqlite_module_path, utf16, name): add the row-encoding aggregate"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_sqlite_rows", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__sqlite_rows(void) { return PyModule_Create(&module); }
