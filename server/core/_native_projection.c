/*
 * The whole-log projection of server/core/bulk_projection.py, one native pass per chunk
 * of the log: COPY binary rows in, the rows of the context graph, trace summary, policy
 * evaluation index and precedent index out (tuples in row_columns order). ADR 0017.
 *
 * It handles the events of an ordinary log and nothing else: whenever an event is in any
 * way unusual (a payload that is not exactly the hashed C1 text with no float, an escape
 * it would have to interpret in a way it does not, a value that is not a string where
 * the Python code formats one, a sequence gap, a missing policy id), it raises
 * Unsupported and the caller runs the whole pass again with the Python projector, which
 * is the definition and gives the exact rows, codes and messages. So it never has to be
 * right about the unusual; it only has to equal the Python projector where it answers,
 * which tests/unit/test_native_projection.py checks against it on generated logs.
 *
 * State between chunks lives in Python containers the caller owns: the node ids written
 * (set), the next trace_seq of each trace (dict), the open summaries (dict of lists),
 * the precedent sources of open traces (dict of lists) and the policy evaluation ids
 * written (set).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ SHA-256 (FIPS 180-4) */

typedef struct {
    uint32_t h[8];
    uint64_t bytes;
    uint8_t block[64];
    size_t used;
} sha256_ctx;

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_compress(uint32_t *h, const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) +
                      K256[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
}

static void sha256_init(sha256_ctx *c) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof iv);
    c->bytes = 0;
    c->used = 0;
}

static void sha256_update(sha256_ctx *c, const uint8_t *p, size_t n) {
    c->bytes += n;
    if (c->used) {
        size_t take = 64 - c->used < n ? 64 - c->used : n;
        memcpy(c->block + c->used, p, take);
        c->used += take; p += take; n -= take;
        if (c->used < 64) return;
        sha256_compress(c->h, c->block);
        c->used = 0;
    }
    for (; n >= 64; p += 64, n -= 64) sha256_compress(c->h, p);
    memcpy(c->block, p, n);
    c->used = n;
}

static void sha256_digest(const uint8_t *p, size_t n, uint8_t out[32]) {
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, p, n);
    uint8_t tail[128] = {0};
    size_t used = c.used, padded = used < 56 ? 64 : 128;
    uint64_t bits = c.bytes * 8;
    memcpy(tail, c.block, used);
    tail[used] = 0x80;
    for (int i = 0; i < 8; i++) tail[padded - 1 - i] = (uint8_t)(bits >> (8 * i));
    sha256_compress(c.h, tail);
    if (padded == 128) sha256_compress(c.h, tail + 64);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++) out[4 * i + j] = (uint8_t)(c.h[i] >> (24 - 8 * j));
}

/* OpenSSL's SHA-256, when the caller found it (native_projection.py looks it up in the
 * libcrypto that hashlib already loaded): it uses the CPU's SHA instructions where they
 * exist, several times faster than the portable code above, which stays the fallback.
 * The low-level SHA256_Init/Update/Final, not the one-shot SHA256(): in OpenSSL 3 that one
 * fetches the algorithm from a provider on every call, under a lock. The context is
 * opaque here: OpenSSL's SHA256_CTX is 112 bytes. */
typedef int (*sha256_init_fn)(void *);
typedef int (*sha256_update_fn)(void *, const void *, size_t);
typedef int (*sha256_final_fn)(unsigned char *, void *);
static sha256_init_fn ossl_init = NULL;
static sha256_update_fn ossl_update = NULL;
static sha256_final_fn ossl_final = NULL;

static void sha256_hex(const uint8_t *p, size_t n, char out[64]) {
    uint8_t digest[32];
    if (ossl_init) {
        _Alignas(16) unsigned char ctx[256];
        ossl_init(ctx);
        ossl_update(ctx, p, n);
        ossl_final(digest, ctx);
    } else {
        sha256_digest(p, n, digest);
    }
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
}

/* --------------------------------------------------------------------- errors and text */

static PyObject *Unsupported; /* the event at this log_seq needs the Python projector */

/* A growable byte buffer, for compacted payloads and composed ids. */
typedef struct {
    char *p;
    Py_ssize_t n, cap;
} buf;

/* The slow path of buf_reserve, apart so that the fast one inlines where it is called
 * (per field of every row: a call each was a tenth of the fragment writer's time). */
static int buf_grow(buf *b, Py_ssize_t extra) {
    Py_ssize_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra) cap *= 2;
    char *p = PyMem_Realloc(b->p, (size_t)cap);
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int buf_reserve(buf *b, Py_ssize_t extra) {
    return b->n + extra <= b->cap ? 0 : buf_grow(b, extra);
}

static inline int buf_add(buf *b, const char *p, Py_ssize_t n) {
    if (buf_reserve(b, n) < 0) return -1;
    memcpy(b->p + b->n, p, (size_t)n);
    b->n += n;
    return 0;
}

/* A JSON value inside the compacted payload. STR: the bytes between the quotes, `esc`
 * when they hold a backslash; other kinds: the value's whole text. */
enum { J_MISSING, J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_OBJ, J_ARR };
typedef struct {
    int kind;
    const char *p;
    Py_ssize_t n;
    int esc;
} jval;

/* The end of the value starting at p (valid JSON without whitespace, as a text whose
 * hash matched is), or NULL when it is not one. */
static const char *skip_value(const char *p, const char *end) {
    if (p >= end) return NULL;
    if (*p == '"') {
        for (p++; p < end; p++) {
            if (*p == '\\') p++;
            else if (*p == '"') return p + 1;
        }
        return NULL;
    }
    if (*p == '{' || *p == '[') {
        int depth = 0;
        for (; p < end; p++) {
            if (*p == '"') {
                p = skip_value(p, end);
                if (!p) return NULL;
                p--;
            } else if (*p == '{' || *p == '[') {
                depth++;
            } else if (*p == '}' || *p == ']') {
                if (--depth == 0) return p + 1;
            }
        }
        return NULL;
    }
    const char *start = p;
    while (p < end && *p != ',' && *p != '}' && *p != ']') p++;
    return p > start ? p : NULL;
}

static jval classify(const char *p, const char *e) {
    jval v = {J_MISSING, p, e - p, 0};
    switch (*p) {
    case '"':
        v.kind = J_STR;
        v.p = p + 1;
        v.n = (e - p) - 2;
        v.esc = memchr(v.p, '\\', (size_t)v.n) != NULL;
        break;
    case '{': v.kind = J_OBJ; break;
    case '[': v.kind = J_ARR; break;
    case 'n': v.kind = J_NULL; break;
    case 'f': v.kind = J_FALSE; break;
    case 't': v.kind = J_TRUE; break;
    default: v.kind = J_NUM; break;
    }
    return v;
}

/* The member `key` of an object value (J_MISSING if absent). -1: malformed. Keys with an
 * escape cannot equal the plain ASCII keys asked for (C1 escapes only quotes,
 * backslashes and control characters), so they never match. */
static int obj_get(jval obj, const char *key, jval *out) {
    out->kind = J_MISSING;
    if (obj.kind != J_OBJ) return 0;
    size_t klen = strlen(key);
    const char *p = obj.p + 1, *end = obj.p + obj.n - 1;
    while (p < end) {
        const char *k = p;
        const char *ke = skip_value(p, end);
        if (!ke || *k != '"' || ke >= end || *ke != ':') return -1;
        const char *v = ke + 1;
        const char *ve = skip_value(v, end);
        if (!ve) return -1;
        if ((size_t)(ke - k - 2) == klen && memcmp(k + 1, key, klen) == 0)
            *out = classify(v, ve); /* keys are unique in C1; no early exit needed */
        p = ve;
        if (p < end) {
            if (*p != ',') return -1;
            p++;
        }
    }
    return 0;
}

/* Append the decoded bytes of a string value (UTF-8). -1 with Unsupported set for what
 * the Python side would decode to something that cannot be written (lone surrogates). */
static int add_string(buf *b, jval v, long long log_seq) {
    if (!v.esc) return buf_add(b, v.p, v.n);
    const char *p = v.p, *end = v.p + v.n;
    while (p < end) {
        if (*p != '\\') {
            if (buf_add(b, p, 1) < 0) return -1;
            p++;
            continue;
        }
        if (p + 1 >= end) goto unsupported;
        char c = p[1], out;
        p += 2;
        switch (c) {
        case '"': out = '"'; break;
        case '\\': out = '\\'; break;
        case '/': out = '/'; break;
        case 'b': out = '\b'; break;
        case 'f': out = '\f'; break;
        case 'n': out = '\n'; break;
        case 'r': out = '\r'; break;
        case 't': out = '\t'; break;
        case 'u': {
            unsigned cp = 0;
            for (int i = 0; i < 4; i++, p++) {
                if (p >= end) goto unsupported;
                char h = *p;
                cp = cp * 16 + (unsigned)(h >= '0' && h <= '9'   ? h - '0'
                                          : h >= 'a' && h <= 'f' ? h - 'a' + 10
                                          : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                                                 : 99);
                if (cp > 0xFFFF) goto unsupported;
            }
            if (cp >= 0xD800 && cp <= 0xDFFF) goto unsupported; /* surrogates: leave to Python */
            char u[3];
            if (cp < 0x80) {
                u[0] = (char)cp;
                if (buf_add(b, u, 1) < 0) return -1;
            } else if (cp < 0x800) {
                u[0] = (char)(0xC0 | (cp >> 6));
                u[1] = (char)(0x80 | (cp & 0x3F));
                if (buf_add(b, u, 2) < 0) return -1;
            } else {
                u[0] = (char)(0xE0 | (cp >> 12));
                u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
                u[2] = (char)(0x80 | (cp & 0x3F));
                if (buf_add(b, u, 3) < 0) return -1;
            }
            continue;
        }
        default: goto unsupported;
        }
        if (buf_add(b, &out, 1) < 0) return -1;
    }
    return 0;
unsupported:
    PyErr_Format(Unsupported, "%lld", log_seq);
    return -1;
}

static PyObject *text(const char *p, Py_ssize_t n) { return PyUnicode_DecodeUTF8(p, n, "strict"); }

static PyObject *unsupported(long long log_seq) {
    PyErr_Format(Unsupported, "%lld", log_seq);
    return NULL;
}

/* Python truthiness of a value that the Python code formats or tests: 1 a non-empty
 * string, 0 absent/null/false/empty string, -1 anything else (Unsupported is set: the
 * Python code would format it with str() or test a container). */
static int truthy_string(jval v, long long log_seq) {
    if (v.kind == J_MISSING || v.kind == J_NULL || v.kind == J_FALSE) return 0;
    if (v.kind == J_STR) return v.n > 0;
    PyErr_Format(Unsupported, "%lld", log_seq);
    return -1;
}

/* `value or default` appended to b. -1 on error. */
static int add_or(buf *b, jval v, const char *dflt, Py_ssize_t dn, long long log_seq) {
    int t = truthy_string(v, log_seq);
    if (t < 0) return -1;
    if (t) return add_string(b, v, log_seq);
    return buf_add(b, dflt, dn);
}

/* A string value (or None) as Python would hold it: str, None for absent or null;
 * anything else is Unsupported (a column of text would get another type). */
static PyObject *string_or_none(jval v, buf *scratch, long long log_seq) {
    if (v.kind == J_MISSING || v.kind == J_NULL) Py_RETURN_NONE;
    if (v.kind != J_STR) return unsupported(log_seq);
    scratch->n = 0;
    if (add_string(scratch, v, log_seq) < 0) return NULL;
    return text(scratch->p, scratch->n);
}

/* ----------------------------------------------------------------------- one log row */

typedef struct {
    long long log_seq, trace_seq;
    const char *event_id, *trace_id, *event_type, *occurred_at, *actor_type, *actor_id,
        *payload, *payload_hash;
    int32_t event_id_n, trace_id_n, event_type_n, occurred_at_n, actor_type_n, actor_id_n,
        payload_n, payload_hash_n;
} row;

static int32_t be32(const unsigned char *p) {
    return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

static long long be64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return (long long)v;
}

/* Compact the stored C2 text into `out` (whitespace outside strings dropped, as
 * msgspec.json.format(indent=-1) does) and say whether it is the hashed C1 with no
 * float: 1 yes, 0 no. */
static int hashed_c1(const row *r, buf *out) {
    out->n = 0;
    if (buf_reserve(out, r->payload_n) < 0) return -1;
    const char *p = r->payload, *end = p + r->payload_n;
    char *o = out->p;
    char prev = 0;
    while (p < end) {
        char c = *p++;
        if (c == '"') {
            *o++ = c;
            while (p < end) {
                char s = *p++;
                *o++ = s;
                if (s == '\\') {
                    if (p < end) *o++ = *p++;
                } else if (s == '"') {
                    break;
                }
            }
            prev = '"';
            continue;
        }
        if (c == ' ' || c == '\n' || c == '\t' || c == '\r') continue;
        /* A float token has a digit right before '.', 'e' or 'E' (outside strings). */
        if ((c == '.' || c == 'e' || c == 'E') && prev >= '0' && prev <= '9') return 0;
        *o++ = c;
        prev = c;
    }
    out->n = o - out->p;
    static const char prefix[] = "sha256:";
    if (r->payload_hash_n != 7 + 64 || memcmp(r->payload_hash, prefix, 7) != 0) return 0;
    char hex[64];
    sha256_hex((const uint8_t *)out->p, (size_t)out->n, hex);
    return memcmp(hex, r->payload_hash + 7, 64) == 0;
}

/* ------------------------------------------------------------------------ projection */

typedef struct {
    PyObject *written, *expected, *open, *sources, *evals; /* caller-owned state */
    /* Nodes and edges leave as binary COPY tuples, scope first, ready for PostgreSQL. */
    const char *scope;
    Py_ssize_t scope_n;
    buf node_copy, edge_copy;
    long long node_rows, edge_rows;
    PyObject *summaries, *policy_evals, *precedents; /* this chunk's other rows */
    buf payload, scratch, id;
    /* The last event's trace, as text and as its trace node's id: a trace's events come
     * together, so most events reuse both objects (and their cached hashes) instead of
     * decoding and hashing them again. Points into the chunk being fed. */
    const char *trace_p;
    int32_t trace_n;
    PyObject *trace_id, *trace_node;
} pass;

/* Interned constants. */
static PyObject *S_trace, *S_actor, *S_entity, *S_input, *S_policy, *S_exception, *S_action;
static PyObject *E_involves, *E_observed, *E_evaluated, *E_requested, *E_approved, *E_cited,
    *E_proposed, *E_targets, *E_committed;

typedef struct {
    PyObject *id, *type; /* own references */
} node_ref;

typedef struct {
    row *r;
    PyObject *trace_id, *occurred_at, *log_seq, *event_id; /* own references */
    node_ref own[3];
    int n_own;
    PyObject *edge_type[2], *from[2], *to[2]; /* type borrowed; ends own */
    int n_edges;
} emission;

/* The event's occurred_at and event_id as str, made on first use: most events (an
 * observed input, say) need neither. Borrowed from the emission. */
static PyObject *ev_occurred(emission *e) {
    if (!e->occurred_at) e->occurred_at = text(e->r->occurred_at, e->r->occurred_at_n);
    return e->occurred_at;
}

static PyObject *ev_event_id(emission *e) {
    if (!e->event_id) e->event_id = text(e->r->event_id, e->r->event_id_n);
    return e->event_id;
}

static void emission_clear(emission *e) {
    for (int i = 0; i < e->n_own; i++) Py_XDECREF(e->own[i].id);
    for (int i = 0; i < e->n_edges; i++) {
        Py_XDECREF(e->from[i]);
        Py_XDECREF(e->to[i]);
    }
    e->n_own = e->n_edges = 0;
}

/* The id composed in pass->id, as a new str. */
static PyObject *composed(pass *ps) { return text(ps->id.p, ps->id.n); }

static int start_id(pass *ps, const char *prefix) {
    ps->id.n = 0;
    return buf_add(&ps->id, prefix, (Py_ssize_t)strlen(prefix));
}

static PyObject *node(emission *e, PyObject *id, PyObject *type) {
    e->own[e->n_own].id = id; /* steals */
    e->own[e->n_own].type = type;
    e->n_own++;
    return id;
}

static void edge(emission *e, PyObject *type, PyObject *from, PyObject *to) {
    Py_INCREF(from);
    Py_INCREF(to);
    e->edge_type[e->n_edges] = type;
    e->from[e->n_edges] = from;
    e->to[e->n_edges] = to;
    e->n_edges++;
}

/* entity:{type or 'unknown'}:{id or 'unknown'} of a reference (non-objects read as {}). */
static PyObject *entity_id(pass *ps, jval ref, long long ls) {
    jval type, id;
    if (obj_get(ref, "entity_type", &type) < 0 || obj_get(ref, "entity_id", &id) < 0)
        return unsupported(ls);
    if (start_id(ps, "entity:") < 0 || add_or(&ps->id, type, "unknown", 7, ls) < 0 ||
        buf_add(&ps->id, ":", 1) < 0 || add_or(&ps->id, id, "unknown", 7, ls) < 0)
        return NULL;
    return composed(ps);
}

/* `{prefix}{value or event_id}` */
static PyObject *id_or_event(pass *ps, const char *prefix, jval v, const row *r) {
    if (start_id(ps, prefix) < 0 || add_or(&ps->id, v, r->event_id, r->event_id_n, r->log_seq) < 0)
        return NULL;
    return composed(ps);
}

static PyObject *policy_node_id(pass *ps, jval payload, const row *r) {
    jval policy, pid, version;
    if (obj_get(payload, "policy", &policy) < 0) return unsupported(r->log_seq);
    if (obj_get(policy, "policy_id", &pid) < 0 || obj_get(policy, "policy_version", &version) < 0)
        return unsupported(r->log_seq);
    if (pid.kind == J_MISSING || pid.kind == J_NULL) {
        if (start_id(ps, "unknown:") < 0 || buf_add(&ps->id, r->event_id, r->event_id_n) < 0)
            return NULL;
        return composed(ps);
    }
    if (pid.kind != J_STR) return unsupported(r->log_seq);
    int has_version = truthy_string(version, r->log_seq);
    if (has_version < 0) return NULL;
    if (start_id(ps, "policy:") < 0 || add_string(&ps->id, pid, r->log_seq) < 0) return NULL;
    if (has_version &&
        (buf_add(&ps->id, ":", 1) < 0 || add_string(&ps->id, version, r->log_seq) < 0))
        return NULL;
    return composed(ps);
}

#define TYPE_IS(r, lit) ((r)->event_type_n == (int32_t)(sizeof(lit) - 1) && \
                         memcmp((r)->event_type, lit, sizeof(lit) - 1) == 0)

/* The event's own nodes and edges (graph.py emit), into e. */
static int emit(pass *ps, emission *e, jval payload) {
    const row *r = e->r;
    long long ls = r->log_seq;
    PyObject *trace = ps->trace_node; /* the cache is this event's trace (project_row) */
    Py_INCREF(trace);
    int rc = -1;
    jval v, w;
    PyObject *id = NULL;
    if (TYPE_IS(r, "TraceStarted")) {
        Py_INCREF(trace);
        node(e, trace, S_trace);
        if (start_id(ps, "actor:") < 0 || buf_add(&ps->id, r->actor_type, r->actor_type_n) < 0 ||
            buf_add(&ps->id, ":", 1) < 0 || buf_add(&ps->id, r->actor_id, r->actor_id_n) < 0)
            goto done;
        if (!(id = composed(ps))) goto done;
        node(e, id, S_actor);
        if (obj_get(payload, "primary_entity", &v) < 0) goto bad;
        if (v.kind != J_MISSING) {
            if (!(id = entity_id(ps, v, ls))) goto done;
            node(e, id, S_entity);
            edge(e, E_involves, trace, id);
        }
    } else if (TYPE_IS(r, "InputObserved")) {
        if (obj_get(payload, "input_id", &v) < 0) goto bad;
        if (!(id = id_or_event(ps, "input:", v, r))) goto done;
        node(e, id, S_input);
        edge(e, E_observed, trace, id);
    } else if (TYPE_IS(r, "EntityObserved")) {
        if (obj_get(payload, "entity", &v) < 0) goto bad;
        if (!(id = entity_id(ps, v, ls))) goto done;
        node(e, id, S_entity);
        edge(e, E_involves, trace, id);
    } else if (TYPE_IS(r, "PolicyEvaluated")) {
        if (!(id = policy_node_id(ps, payload, r))) goto done;
        node(e, id, S_policy);
        edge(e, E_evaluated, trace, id);
    } else if (TYPE_IS(r, "ExceptionRequested")) {
        if (obj_get(payload, "exception_id", &v) < 0) goto bad;
        if (!(id = id_or_event(ps, "exception:", v, r))) goto done;
        node(e, id, S_exception);
        edge(e, E_requested, trace, id);
    } else if (TYPE_IS(r, "ApprovalRecorded")) {
        jval approver, type, aid, subject;
        if (obj_get(payload, "approver", &approver) < 0 ||
            obj_get(approver, "actor_type", &type) < 0 || obj_get(approver, "actor_id", &aid) < 0)
            goto bad;
        if (start_id(ps, "actor:") < 0 || add_or(&ps->id, type, "person", 6, ls) < 0 ||
            buf_add(&ps->id, ":", 1) < 0 || add_or(&ps->id, aid, "unknown", 7, ls) < 0)
            goto done;
        PyObject *actor = composed(ps);
        if (!actor) goto done;
        node(e, actor, S_actor);
        if (obj_get(payload, "subject", &subject) < 0 ||
            obj_get(subject, "subject_type", &v) < 0 || obj_get(subject, "subject_id", &w) < 0)
            goto bad;
        /* An escaped string is never "exception": C1 escapes only quotes, backslashes and
         * control characters. */
        int is_exception =
            v.kind == J_STR && !v.esc && v.n == 9 && memcmp(v.p, "exception", 9) == 0;
        if (is_exception) {
            int t = truthy_string(w, ls);
            if (t < 0) goto done;
            if (t) {
                if (start_id(ps, "exception:") < 0 || add_string(&ps->id, w, ls) < 0) goto done;
                if (!(id = composed(ps))) goto done;
                edge(e, E_approved, id, actor);
                Py_DECREF(id);
            }
        }
    } else if (TYPE_IS(r, "PrecedentCited")) {
        if (obj_get(payload, "cited_trace_id", &v) < 0) goto bad;
        int t = truthy_string(v, ls);
        if (t < 0) goto done;
        if (t) {
            if (start_id(ps, "trace:") < 0 || add_string(&ps->id, v, ls) < 0) goto done;
            if (!(id = composed(ps))) goto done;
            edge(e, E_cited, trace, id);
            Py_DECREF(id);
        }
    } else if (TYPE_IS(r, "ActionProposed")) {
        if (obj_get(payload, "action_id", &v) < 0) goto bad;
        PyObject *action = id_or_event(ps, "action:", v, r);
        if (!action) goto done;
        node(e, action, S_action);
        edge(e, E_proposed, trace, action);
        if (obj_get(payload, "target_entity", &w) < 0) goto bad;
        if (w.kind == J_OBJ && w.n > 2) {
            if (!(id = entity_id(ps, w, ls))) goto done;
            edge(e, E_targets, action, id);
            Py_DECREF(id);
        }
    } else if (TYPE_IS(r, "ActionCommitted")) {
        if (obj_get(payload, "action_id", &v) < 0) goto bad;
        int t = truthy_string(v, ls);
        if (t < 0) goto done;
        if (t) {
            if (start_id(ps, "action:") < 0 || add_string(&ps->id, v, ls) < 0) goto done;
            if (!(id = composed(ps))) goto done;
            edge(e, E_committed, trace, id);
            Py_DECREF(id);
        }
    }
    rc = 0;
    goto done;
bad:
    PyErr_Format(Unsupported, "%lld", ls);
done:
    Py_DECREF(trace);
    return rc;
}

static int append_tuple(PyObject *list, PyObject *tuple) {
    if (!tuple) return -1;
    int rc = PyList_Append(list, tuple);
    Py_DECREF(tuple);
    return rc;
}

/* Binary COPY fields: a big-endian length, then the bytes. */
static int copy_count(buf *b, int16_t fields) {
    char be[2] = {(char)(fields >> 8), (char)(fields & 0xFF)};
    return buf_add(b, be, 2);
}

static int copy_text(buf *b, const char *p, Py_ssize_t n) {
    if (n > INT32_MAX) return -1;
    char be[4] = {(char)(n >> 24), (char)(n >> 16), (char)(n >> 8), (char)n};
    if (buf_add(b, be, 4) < 0) return -1;
    return buf_add(b, p, n);
}

static int copy_str(buf *b, PyObject *s) {
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(s, &n);
    return p ? copy_text(b, p, n) : -1;
}

static int copy_int8(buf *b, long long v) {
    char be[12] = {0, 0, 0, 8};
    for (int i = 0; i < 8; i++) be[4 + i] = (char)((unsigned long long)v >> (56 - 8 * i));
    return buf_add(b, be, 12);
}

/* One node row as a COPY tuple: scope, node_id, node_type, trace_id, log_seq, created_at.
 * A placeholder's type is its id's text before the first ':' (`unknown` without one), and
 * a trace placeholder belongs to the trace its id names. */
static int copy_node(pass *ps, emission *e, PyObject *id, PyObject *own_type) {
    const row *r = e->r;
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(id, &n);
    if (!p) return -1;
    buf *b = &ps->node_copy;
    if (copy_count(b, 6) < 0 || copy_text(b, ps->scope, ps->scope_n) < 0 || copy_text(b, p, n) < 0)
        return -1;
    const char *trace = r->trace_id;
    Py_ssize_t trace_n = r->trace_id_n;
    if (own_type) {
        if (copy_str(b, own_type) < 0) return -1;
    } else {
        const char *colon = memchr(p, ':', (size_t)n);
        if (!colon) {
            if (copy_text(b, "unknown", 7) < 0) return -1;
        } else {
            if (copy_text(b, p, colon - p) < 0) return -1;
            if (colon - p == 5 && memcmp(p, "trace", 5) == 0) {
                trace = colon + 1;
                trace_n = n - (colon + 1 - p);
            }
        }
    }
    if (copy_text(b, trace, trace_n) < 0 || copy_int8(b, r->log_seq) < 0 ||
        copy_text(b, r->occurred_at, r->occurred_at_n) < 0)
        return -1;
    ps->node_rows++;
    return 0;
}

/* One edge row as a COPY tuple: scope, edge_id, edge_type, from_node_id, to_node_id,
 * trace_id, log_seq, created_at; the id is `{type}:{from}:{to}:{event_id}`. */
static int copy_edge(pass *ps, emission *e, int i) {
    const row *r = e->r;
    Py_ssize_t tn, fn, on;
    const char *t = PyUnicode_AsUTF8AndSize(e->edge_type[i], &tn);
    const char *f = t ? PyUnicode_AsUTF8AndSize(e->from[i], &fn) : NULL;
    const char *o = f ? PyUnicode_AsUTF8AndSize(e->to[i], &on) : NULL;
    if (!o) return -1;
    buf *b = &ps->edge_copy;
    Py_ssize_t id_n = tn + fn + on + r->event_id_n + 3;
    if (id_n > INT32_MAX) return -1;
    char be[4] = {(char)(id_n >> 24), (char)(id_n >> 16), (char)(id_n >> 8), (char)id_n};
    if (copy_count(b, 8) < 0 || copy_text(b, ps->scope, ps->scope_n) < 0 ||
        buf_add(b, be, 4) < 0 || buf_add(b, t, tn) < 0 || buf_add(b, ":", 1) < 0 ||
        buf_add(b, f, fn) < 0 || buf_add(b, ":", 1) < 0 || buf_add(b, o, on) < 0 ||
        buf_add(b, ":", 1) < 0 || buf_add(b, r->event_id, r->event_id_n) < 0 ||
        copy_text(b, t, tn) < 0 || copy_text(b, f, fn) < 0 || copy_text(b, o, on) < 0 ||
        copy_text(b, r->trace_id, r->trace_id_n) < 0 || copy_int8(b, r->log_seq) < 0 ||
        copy_text(b, r->occurred_at, r->occurred_at_n) < 0)
        return -1;
    ps->edge_rows++;
    return 0;
}

/* Placeholders, edges and first-write-wins nodes of one emission (graph.py _Emitter and
 * bulk_projection.py _project), into the chunk's rows. */
static int write_emission(pass *ps, emission *e) {
    PyObject *placeholders[4];
    int n_ph = 0, rc = -1;
    /* Own nodes first, in order; a placeholder for an edge end that is neither one of
     * them nor written already. */
    for (int i = 0; i < e->n_edges; i++) {
        PyObject *ends[2] = {e->from[i], e->to[i]};
        for (int j = 0; j < 2; j++) {
            PyObject *end = ends[j];
            int seen = 0;
            for (int k = 0; k < e->n_own && !seen; k++)
                seen = PyUnicode_Compare(e->own[k].id, end) == 0;
            for (int k = 0; k < n_ph && !seen; k++)
                seen = PyUnicode_Compare(placeholders[k], end) == 0;
            if (seen) continue;
            int known = PySet_Contains(ps->written, end);
            if (known < 0) goto done;
            if (!known) placeholders[n_ph++] = end;
        }
    }
    for (int i = 0; i < e->n_own + n_ph; i++) {
        PyObject *id = i < e->n_own ? e->own[i].id : placeholders[i - e->n_own];
        int known = PySet_Contains(ps->written, id);
        if (known < 0) goto done;
        if (known) continue;
        if (PySet_Add(ps->written, id) < 0) goto done;
        if (copy_node(ps, e, id, i < e->n_own ? e->own[i].type : NULL) < 0) goto done;
    }
    for (int i = 0; i < e->n_edges; i++) {
        int repeat = 0; /* an edge id names its event: repeats only within one emission */
        for (int k = 0; k < i && !repeat; k++)
            repeat = e->edge_type[k] == e->edge_type[i] &&
                     PyUnicode_Compare(e->from[k], e->from[i]) == 0 &&
                     PyUnicode_Compare(e->to[k], e->to[i]) == 0;
        if (repeat) continue;
        if (copy_edge(ps, e, i) < 0) goto done;
    }
    rc = 0;
done:
    return rc;
}

/* Summary columns, as the open summary list holds them. */
enum { SUM_TRACE, SUM_WORKFLOW, SUM_TITLE, SUM_PE_TYPE, SUM_PE_ID, SUM_OUTCOME, SUM_STARTED,
       SUM_FINISHED, SUM_COUNT, SUM_LAST, SUM_FIELDS };

static int set_item(PyObject *list, Py_ssize_t i, PyObject *value) {
    if (!value) return -1;
    return PyList_SetItem(list, i, value); /* steals */
}

/* trace_summary.py apply_summary, and the bulk projector's open/finished bookkeeping. */
static int summarize(pass *ps, emission *e, jval payload, int finished) {
    const row *r = e->r;
    long long ls = r->log_seq;
    PyObject *open = PyDict_GetItemWithError(ps->open, e->trace_id); /* borrowed */
    if (!open && PyErr_Occurred()) return -1;
    if (TYPE_IS(r, "TraceStarted")) {
        if (open) { /* unreachable through append validation; mirrors the upsert */
            long long count = PyLong_AsLongLong(PyList_GET_ITEM(open, SUM_COUNT));
            if (set_item(open, SUM_COUNT, PyLong_FromLongLong(count + 1)) < 0) return -1;
            Py_INCREF(e->log_seq);
            return set_item(open, SUM_LAST, e->log_seq);
        }
        jval workflow, title, pe, pt, pi;
        if (obj_get(payload, "workflow", &workflow) < 0 || obj_get(payload, "title", &title) < 0 ||
            obj_get(payload, "primary_entity", &pe) < 0)
            goto bad;
        PyObject *row_ = PyList_New(SUM_FIELDS);
        if (!row_) return -1;
        int rc = -1;
        Py_INCREF(e->trace_id);
        PyList_SET_ITEM(row_, SUM_TRACE, e->trace_id);
        ps->scratch.n = 0;
        if (add_or(&ps->scratch, workflow, "", 0, ls) < 0 ||
            set_item(row_, SUM_WORKFLOW, text(ps->scratch.p, ps->scratch.n)) < 0)
            goto fail;
        ps->scratch.n = 0;
        if (add_or(&ps->scratch, title, "", 0, ls) < 0 ||
            set_item(row_, SUM_TITLE, text(ps->scratch.p, ps->scratch.n)) < 0)
            goto fail;
        if (pe.kind == J_OBJ && pe.n > 2) {
            if (obj_get(pe, "entity_type", &pt) < 0 || obj_get(pe, "entity_id", &pi) < 0) {
                PyErr_Format(Unsupported, "%lld", ls);
                goto fail;
            }
            if (set_item(row_, SUM_PE_TYPE, string_or_none(pt, &ps->scratch, ls)) < 0 ||
                set_item(row_, SUM_PE_ID, string_or_none(pi, &ps->scratch, ls)) < 0)
                goto fail;
        } else {
            Py_INCREF(Py_None);
            PyList_SET_ITEM(row_, SUM_PE_TYPE, Py_None);
            Py_INCREF(Py_None);
            PyList_SET_ITEM(row_, SUM_PE_ID, Py_None);
        }
        Py_INCREF(Py_None);
        PyList_SET_ITEM(row_, SUM_OUTCOME, Py_None);
        PyObject *started = ev_occurred(e);
        if (!started) goto fail;
        Py_INCREF(started);
        PyList_SET_ITEM(row_, SUM_STARTED, started);
        Py_INCREF(Py_None);
        PyList_SET_ITEM(row_, SUM_FINISHED, Py_None);
        if (set_item(row_, SUM_COUNT, PyLong_FromLong(1)) < 0) goto fail;
        Py_INCREF(e->log_seq);
        PyList_SET_ITEM(row_, SUM_LAST, e->log_seq);
        rc = PyDict_SetItem(ps->open, e->trace_id, row_);
    fail:
        Py_DECREF(row_);
        return rc;
    }
    if (finished && open) {
        jval outcome;
        if (obj_get(payload, "outcome", &outcome) < 0) goto bad;
        ps->scratch.n = 0;
        if (add_or(&ps->scratch, outcome, "success", 7, ls) < 0 ||
            set_item(open, SUM_OUTCOME, text(ps->scratch.p, ps->scratch.n)) < 0)
            return -1;
        PyObject *at = ev_occurred(e);
        if (!at) return -1;
        Py_INCREF(at);
        if (set_item(open, SUM_FINISHED, at) < 0) return -1;
        long long count = PyLong_AsLongLong(PyList_GET_ITEM(open, SUM_COUNT));
        if (set_item(open, SUM_COUNT, PyLong_FromLongLong(count + 1)) < 0) return -1;
        Py_INCREF(e->log_seq);
        if (set_item(open, SUM_LAST, e->log_seq) < 0) return -1;
        PyObject *done = PyList_AsTuple(open);
        if (!done || PyDict_DelItem(ps->open, e->trace_id) < 0) {
            Py_XDECREF(done);
            return -1;
        }
        return append_tuple(ps->summaries, done);
    }
    return 0;
bad:
    PyErr_Format(Unsupported, "%lld", ls);
    return -1;
}

/* The policy id and version of a PolicyEvaluated or ExceptionRequested event, both
 * non-empty strings (precedent.py refuses anything falsy; the rest is left to it). */
static int policy_of(pass *ps, jval payload, long long ls, PyObject **pid, PyObject **version) {
    jval policy, id, v;
    if (obj_get(payload, "policy", &policy) < 0 || obj_get(policy, "policy_id", &id) < 0 ||
        obj_get(policy, "policy_version", &v) < 0 || id.kind != J_STR || id.n == 0 ||
        v.kind != J_STR || v.n == 0) {
        PyErr_Format(Unsupported, "%lld", ls);
        return -1;
    }
    *pid = string_or_none(id, &ps->scratch, ls);
    if (!*pid) return -1;
    *version = string_or_none(v, &ps->scratch, ls);
    if (!*version) {
        Py_DECREF(*pid);
        return -1;
    }
    return 0;
}

static int append_source(pass *ps, PyObject *trace_id, PyObject *source) {
    if (!source) return -1;
    PyObject *list = PyDict_GetItemWithError(ps->sources, trace_id);
    int rc;
    if (list) {
        rc = PyList_Append(list, source);
    } else if (PyErr_Occurred()) {
        rc = -1;
    } else {
        list = PyList_New(0);
        rc = !list || PyList_Append(list, source) < 0 || PyDict_SetItem(ps->sources, trace_id, list) < 0 ? -1 : 0;
        Py_XDECREF(list);
    }
    Py_DECREF(source);
    return rc;
}

/* precedent.py: the policy evaluation row of a PolicyEvaluated, the sources of a trace
 * while it is open, and its precedent rows when it finishes. */
static int index_precedents(pass *ps, emission *e, jval payload, int finished) {
    const row *r = e->r;
    long long ls = r->log_seq;
    int evaluated = TYPE_IS(r, "PolicyEvaluated");
    if (evaluated || TYPE_IS(r, "ExceptionRequested")) {
        PyObject *pid, *version, *exception_id = Py_None;
        if (!ev_event_id(e) || !ev_occurred(e)) return -1;
        if (policy_of(ps, payload, ls, &pid, &version) < 0) return -1;
        if (evaluated) {
            PyObject *index_id = PyUnicode_FromFormat("%U:%U:%U:%U", e->trace_id, pid, version,
                                                      e->event_id);
            int known = index_id ? PySet_Contains(ps->evals, index_id) : -1;
            if (known == 0)
                known = PySet_Add(ps->evals, index_id) < 0 ||
                                append_tuple(ps->policy_evals,
                                             PyTuple_Pack(6, index_id, e->trace_id, pid, version,
                                                          e->log_seq, e->occurred_at)) < 0
                            ? -1
                            : 1;
            Py_XDECREF(index_id);
            if (known < 0) {
                Py_DECREF(pid);
                Py_DECREF(version);
                return -1;
            }
            Py_INCREF(Py_None);
        } else {
            jval x;
            if (obj_get(payload, "exception_id", &x) < 0 || x.kind != J_STR || x.n == 0) {
                Py_DECREF(pid);
                Py_DECREF(version);
                PyErr_Format(Unsupported, "%lld", ls);
                return -1;
            }
            exception_id = string_or_none(x, &ps->scratch, ls);
            if (!exception_id) {
                Py_DECREF(pid);
                Py_DECREF(version);
                return -1;
            }
        }
        PyObject *source = PyTuple_Pack(5, e->event_id, e->log_seq, pid, version, exception_id);
        Py_DECREF(pid);
        Py_DECREF(version);
        Py_DECREF(exception_id);
        return append_source(ps, e->trace_id, source);
    }
    if (TYPE_IS(r, "TraceStarted")) {
        /* The first TraceStarted fixes the trace's entity: a 3-tuple of its values. */
        jval pe, t, s, i;
        if (obj_get(payload, "primary_entity", &pe) < 0 || obj_get(pe, "entity_type", &t) < 0 ||
            obj_get(pe, "system", &s) < 0 || obj_get(pe, "entity_id", &i) < 0) {
            PyErr_Format(Unsupported, "%lld", ls);
            return -1;
        }
        PyObject *vt = string_or_none(t, &ps->scratch, ls);
        PyObject *vs = vt ? string_or_none(s, &ps->scratch, ls) : NULL;
        PyObject *vi = vs ? string_or_none(i, &ps->scratch, ls) : NULL;
        PyObject *source = vi ? PyTuple_Pack(3, vt, vs, vi) : NULL;
        Py_XDECREF(vt);
        Py_XDECREF(vs);
        Py_XDECREF(vi);
        return append_source(ps, e->trace_id, source);
    }
    if (!finished) return 0;
    PyObject *sources = PyDict_GetItemWithError(ps->sources, e->trace_id);
    if (!sources) return PyErr_Occurred() ? -1 : 0;
    PyObject *entity = NULL; /* borrowed: the first TraceStarted's */
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(sources); k++) {
        PyObject *src = PyList_GET_ITEM(sources, k);
        if (PyTuple_GET_SIZE(src) == 3) {
            if (!entity) entity = src;
            continue;
        }
        PyObject *pt = entity ? PyTuple_GET_ITEM(entity, 0) : Py_None;
        PyObject *psys = entity ? PyTuple_GET_ITEM(entity, 1) : Py_None;
        PyObject *pi = entity ? PyTuple_GET_ITEM(entity, 2) : Py_None;
        if (append_tuple(ps->precedents,
                         PyTuple_Pack(9, PyTuple_GET_ITEM(src, 0), PyTuple_GET_ITEM(src, 1),
                                      e->trace_id, PyTuple_GET_ITEM(src, 2),
                                      PyTuple_GET_ITEM(src, 3), PyTuple_GET_ITEM(src, 4), pt,
                                      psys, pi)) < 0)
            return -1;
    }
    return PyDict_DelItem(ps->sources, e->trace_id);
}

static int project_row(pass *ps, row *r) {
    /* Step 1 of spec §6.2: the payload is the hashed C1; step 2: no trace_seq gap. */
    int ok = hashed_c1(r, &ps->payload);
    if (ok <= 0) {
        if (ok == 0) PyErr_Format(Unsupported, "%lld", r->log_seq);
        return -1;
    }
    emission e;
    memset(&e, 0, sizeof e);
    e.r = r;
    int rc = -1;
    if (!ps->trace_id || ps->trace_n != r->trace_id_n ||
        memcmp(ps->trace_p, r->trace_id, (size_t)r->trace_id_n) != 0) {
        PyObject *trace_id = text(r->trace_id, r->trace_id_n);
        if (!trace_id) return -1;
        if (start_id(ps, "trace:") < 0 || buf_add(&ps->id, r->trace_id, r->trace_id_n) < 0) {
            Py_DECREF(trace_id);
            return -1;
        }
        PyObject *trace_node = composed(ps);
        if (!trace_node) {
            Py_DECREF(trace_id);
            return -1;
        }
        Py_XSETREF(ps->trace_id, trace_id);
        Py_XSETREF(ps->trace_node, trace_node);
        ps->trace_p = r->trace_id;
        ps->trace_n = r->trace_id_n;
    }
    e.trace_id = ps->trace_id;
    Py_INCREF(e.trace_id);
    PyObject *expected = PyDict_GetItemWithError(ps->expected, e.trace_id);
    long long want = 0;
    if (expected) want = PyLong_AsLongLong(expected);
    else if (PyErr_Occurred()) goto done;
    if (r->trace_seq != want) {
        PyErr_Format(Unsupported, "%lld", r->log_seq);
        goto done;
    }
    e.log_seq = PyLong_FromLongLong(r->log_seq);
    if (!e.log_seq) goto done;
    const char *p = ps->payload.p;
    if (ps->payload.n < 2 || p[0] != '{') {
        PyErr_Format(Unsupported, "%lld", r->log_seq);
        goto done;
    }
    jval payload = {J_OBJ, p, ps->payload.n, 0};
    int finished = TYPE_IS(r, "TraceFinished");
    /* Every check that can refuse the event runs before anything of it is kept, as in
     * bulk_projection.py: emission and summary only read, rows come after. The precedent
     * step keeps state, but an Unsupported anywhere discards the whole pass. */
    if (emit(ps, &e, payload) < 0) goto done;
    if (summarize(ps, &e, payload, finished) < 0) goto done;
    if (write_emission(ps, &e) < 0) goto done;
    if (index_precedents(ps, &e, payload, finished) < 0) goto done;
    PyObject *next = PyLong_FromLongLong(r->trace_seq + 1);
    if (!next) goto done;
    rc = PyDict_SetItem(ps->expected, e.trace_id, next);
    Py_DECREF(next);
done:
    emission_clear(&e);
    Py_XDECREF(e.trace_id);
    Py_XDECREF(e.occurred_at);
    Py_XDECREF(e.log_seq);
    Py_XDECREF(e.event_id);
    return rc;
}

/* ------------------------------------------------------------------ COPY binary reader */

static const char COPY_SIGNATURE[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', '\377', '\r', '\n', '\0'};

static int text_field(const unsigned char **p, const unsigned char *end, const char **out,
                      int32_t *n) {
    if (end - *p < 4) return -1;
    int32_t len = be32(*p);
    *p += 4;
    if (len < 0 || end - *p < len) return -1; /* NULL: no such column may be null */
    *out = (const char *)*p;
    *n = len;
    *p += len;
    return 0;
}

static int int8_field(const unsigned char **p, const unsigned char *end, long long *out) {
    if (end - *p < 12 || be32(*p) != 8) return -1;
    *out = be64(*p + 4);
    *p += 12;
    return 0;
}

PyDoc_STRVAR(feed_doc,
"feed(copy, written, expected, open, sources, evals, scope, start=0, limit=0) ->\n"
"(nodes, edges, summaries, policy_evals, precedents, last_log_seq, applied, next)\n\n"
"Nodes and edges are (binary COPY tuples with the scope first, how many).\n"
"Project the rows of one binary COPY of FACT_COLUMNS (log_seq and trace_seq as int8),\n"
"from its start (0: the header) or from the offset a previous call returned as\n"
"`next`, at most `limit` rows (0: all); `next` is -1 once the COPY's end is read.\n"
"Raises Unsupported (its argument: the log_seq) for any event the Python projector\n"
"must handle; the state is then unusable.");

static PyObject *feed(PyObject *self, PyObject *args) {
    Py_buffer data;
    pass ps;
    memset(&ps, 0, sizeof ps);
    const char *scope;
    Py_ssize_t scope_n, start = 0, limit = 0;
    if (!PyArg_ParseTuple(args, "y*O!O!O!O!O!s#|nn", &data, &PySet_Type, &ps.written,
                          &PyDict_Type, &ps.expected, &PyDict_Type, &ps.open, &PyDict_Type,
                          &ps.sources, &PySet_Type, &ps.evals, &scope, &scope_n, &start,
                          &limit))
        return NULL;
    ps.scope = scope;
    ps.scope_n = scope_n;
    PyObject *result = NULL;
    long long last = 0, applied = 0;
    ps.summaries = PyList_New(0);
    ps.policy_evals = PyList_New(0);
    ps.precedents = PyList_New(0);
    if (!ps.summaries || !ps.policy_evals || !ps.precedents) goto done;
    const unsigned char *p = data.buf, *end = p + data.len;
    Py_ssize_t next = -1; /* the COPY's end read */
    if (data.len < 19 || memcmp(p, COPY_SIGNATURE, 11) != 0) goto malformed;
    if (start > 0) { /* where an earlier call stopped, at a tuple */
        if (start < 19 || start > data.len) goto malformed;
        p += start;
    } else {
        p += 15;
        int32_t extension = be32(p);
        p += 4;
        if (extension < 0 || end - p < extension) goto malformed;
        p += extension;
    }
    for (;;) {
        if (limit > 0 && applied == limit) {
            next = (const char *)p - (const char *)data.buf;
            break;
        }
        if (end - p < 2) goto malformed;
        int fields = (int16_t)((uint16_t)p[0] << 8 | p[1]);
        p += 2;
        if (fields == -1) break;
        if (fields != 10) goto malformed;
        row r;
        if (int8_field(&p, end, &r.log_seq) < 0 ||
            text_field(&p, end, &r.event_id, &r.event_id_n) < 0 ||
            text_field(&p, end, &r.trace_id, &r.trace_id_n) < 0 ||
            int8_field(&p, end, &r.trace_seq) < 0 ||
            text_field(&p, end, &r.event_type, &r.event_type_n) < 0 ||
            text_field(&p, end, &r.occurred_at, &r.occurred_at_n) < 0 ||
            text_field(&p, end, &r.actor_type, &r.actor_type_n) < 0 ||
            text_field(&p, end, &r.actor_id, &r.actor_id_n) < 0 ||
            text_field(&p, end, &r.payload, &r.payload_n) < 0 ||
            text_field(&p, end, &r.payload_hash, &r.payload_hash_n) < 0)
            goto malformed;
        if (project_row(&ps, &r) < 0) goto done;
        last = r.log_seq;
        applied++;
    }
    result = Py_BuildValue("((y#L)(y#L)OOOLLn)", ps.node_copy.p ? ps.node_copy.p : "",
                           ps.node_copy.n, ps.node_rows, ps.edge_copy.p ? ps.edge_copy.p : "",
                           ps.edge_copy.n, ps.edge_rows, ps.summaries, ps.policy_evals,
                           ps.precedents, last, applied, next);
    goto done;
malformed:
    PyErr_SetString(PyExc_ValueError, "not a binary COPY of the projected columns");
done:
    Py_XDECREF(ps.summaries);
    Py_XDECREF(ps.policy_evals);
    Py_XDECREF(ps.precedents);
    Py_XDECREF(ps.trace_id);
    Py_XDECREF(ps.trace_node);
    PyMem_Free(ps.payload.p);
    PyMem_Free(ps.scratch.p);
    PyMem_Free(ps.id.p);
    PyMem_Free(ps.node_copy.p);
    PyMem_Free(ps.edge_copy.p);
    PyBuffer_Release(&data);
    return result;
}

/* ---------------------------------------------------------------- digest fragments */

/* A string as C3 writes it (json.dumps with ensure_ascii): quotes, backslash and the
 * short escapes, \u00xx for other control characters and DEL, \uxxxx for everything
 * outside ASCII (astral characters as surrogate pairs), lowercase hex. -1: not UTF-8. */
/* Bytes C3 copies as they are: printable ASCII but the quote and the backslash. */
static unsigned char c3_plain[256];

static void c3_plain_init(void) {
    for (int c = 0x20; c < 0x7f; c++) c3_plain[c] = c != '"' && c != '\\';
}

static int c3_string(buf *b, const unsigned char *p, Py_ssize_t n) {
    static const char hex[] = "0123456789abcdef";
    if (buf_add(b, "\"", 1) < 0) return -1;
    const unsigned char *end = p + n;
    while (p < end) {
        unsigned c = *p;
        if (c3_plain[c]) {
            const unsigned char *run = p;
            while (p < end && c3_plain[*p]) p++;
            if (buf_add(b, (const char *)run, p - run) < 0) return -1;
            continue;
        }
        char esc[12];
        int len = 0;
        unsigned cp;
        if (c < 0x80) {
            cp = c;
            p++;
        } else {
            int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : -1;
            if (extra < 0 || end - p <= extra) return -1;
            cp = c & (0x3F >> extra);
            for (int i = 1; i <= extra; i++) {
                if ((p[i] & 0xC0) != 0x80) return -1;
                cp = cp << 6 | (p[i] & 0x3F);
            }
            p += extra + 1;
        }
        switch (cp) {
        case '"': esc[0] = '\\'; esc[1] = '"'; len = 2; break;
        case '\\': esc[0] = '\\'; esc[1] = '\\'; len = 2; break;
        case '\n': esc[0] = '\\'; esc[1] = 'n'; len = 2; break;
        case '\r': esc[0] = '\\'; esc[1] = 'r'; len = 2; break;
        case '\t': esc[0] = '\\'; esc[1] = 't'; len = 2; break;
        case '\b': esc[0] = '\\'; esc[1] = 'b'; len = 2; break;
        case '\f': esc[0] = '\\'; esc[1] = 'f'; len = 2; break;
        default: {
            unsigned units[2] = {cp, 0};
            int count = 1;
            if (cp > 0xFFFF) {
                cp -= 0x10000;
                units[0] = 0xD800 | (cp >> 10);
                units[1] = 0xDC00 | (cp & 0x3FF);
                count = 2;
            }
            for (int u = 0; u < count; u++) {
                esc[len++] = '\\';
                esc[len++] = 'u';
                for (int shift = 12; shift >= 0; shift -= 4) esc[len++] = hex[(units[u] >> shift) & 15];
            }
        }
        }
        if (buf_add(b, esc, len) < 0) return -1;
    }
    return buf_add(b, "\"", 1);
}

typedef struct {
    const unsigned char *p[9];
    int32_t n[9];
} tuple_fields;

/* The fields of one COPY tuple at *p (at most 9, NULL-free), advancing *p. */
static int read_tuple(const unsigned char **p, const unsigned char *end, int want, tuple_fields *t) {
    if (end - *p < 2) return -1;
    int fields = (int16_t)((uint16_t)(*p)[0] << 8 | (*p)[1]);
    *p += 2;
    if (fields != want) return -1;
    for (int i = 0; i < fields; i++) {
        if (end - *p < 4) return -1;
        int32_t len = be32(*p);
        *p += 4;
        if (len < 0 || end - *p < len) return -1;
        t->p[i] = *p;
        t->n[i] = len;
        *p += len;
    }
    return 0;
}

/* `v` in decimal into `out` (at least 21 bytes, not terminated); its length. snprintf
 * did this at a twelfth of the fragment writer's time. */
static int decimal(char *out, long long v) {
    char digits[20];
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    int n = 0;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    int len = 0;
    if (v < 0) out[len++] = '-';
    while (n) out[len++] = digits[--n];
    return len;
}

/* Rows are sorted through pointers: qsort moves 8 bytes a swap rather than a whole
 * tuple_fields (glibc's merge sort copies every element it moves). */
static int compare_ids(const void *a, const void *b) {
    const tuple_fields *x = *(tuple_fields *const *)a, *y = *(tuple_fields *const *)b;
    int32_t n = x->n[0] < y->n[0] ? x->n[0] : y->n[0];
    int c = memcmp(x->p[0], y->p[0], (size_t)n);
    return c ? c : (x->n[0] > y->n[0]) - (x->n[0] < y->n[0]);
}

/* The C3 fragment of a node or edge row (digest.py, spec §6.8): its fields by key name,
 * with an empty "attrs" first. Fields: node (id, type, trace_id, log_seq, created_at),
 * edge (id, type, from, to, trace_id, log_seq, created_at). */
static int fragment(buf *b, const tuple_fields *t, int edge) {
#define STR(i) c3_string(b, t->p[i], t->n[i])
#define LIT(s) buf_add(b, s, (Py_ssize_t)(sizeof(s) - 1))
    int seq = edge ? 5 : 3, created = edge ? 6 : 4;
    if (t->n[seq] != 8) return -1;
    char number[24];
    int digits = decimal(number, be64(t->p[seq]));
    if (LIT("{\"attrs\":{},\"created_at\":") < 0 || STR(created) < 0) return -1;
    if (edge) {
        if (LIT(",\"edge_id\":") < 0 || STR(0) < 0 || LIT(",\"edge_type\":") < 0 || STR(1) < 0 ||
            LIT(",\"from_node_id\":") < 0 || STR(2) < 0 || LIT(",\"log_seq\":") < 0 ||
            buf_add(b, number, digits) < 0 || LIT(",\"to_node_id\":") < 0 || STR(3) < 0 ||
            LIT(",\"trace_id\":") < 0 || STR(4) < 0)
            return -1;
    } else {
        if (LIT(",\"log_seq\":") < 0 || buf_add(b, number, digits) < 0 ||
            LIT(",\"node_id\":") < 0 || STR(0) < 0 || LIT(",\"node_type\":") < 0 ||
            STR(1) < 0 || LIT(",\"trace_id\":") < 0 || STR(2) < 0)
            return -1;
    }
    return LIT("}");
#undef STR
#undef LIT
}

/* Graph rows of binary COPY tuples, in id order: the tuples of `parts` (each a whole
 * COPY or bare tuples; `scoped`: a scope field first, skipped), parsed in place. */
typedef struct {
    tuple_fields *rows;
    tuple_fields **order;
    Py_ssize_t count, cap;
} graph_rows;

static void graph_rows_free(graph_rows *g) {
    PyMem_Free(g->rows);
    PyMem_Free(g->order);
}

/* 0, or -1 with an exception set (ValueError: not COPY tuples of graph rows). */
static int graph_rows_read(graph_rows *g, const Py_buffer *part, int want, int scoped) {
    const unsigned char *p = part->buf, *end = p + part->len;
    if (part->len >= 19 && memcmp(p, COPY_SIGNATURE, 11) == 0) {
        int32_t extension = be32(p + 15);
        if (extension < 0 || part->len - 19 < extension) goto malformed;
        p += 19 + extension;
    }
    while (p < end) {
        if (end - p >= 2 && p[0] == 0xFF && p[1] == 0xFF) break; /* the trailer */
        if (g->count == g->cap) {
            Py_ssize_t cap = g->cap ? g->cap * 2 : 1024;
            tuple_fields *grown = PyMem_Realloc(g->rows, (size_t)cap * sizeof *g->rows);
            if (!grown) {
                PyErr_NoMemory();
                return -1;
            }
            g->rows = grown;
            g->cap = cap;
        }
        tuple_fields t;
        if (read_tuple(&p, end, want, &t) < 0) goto malformed;
        if (scoped) {
            memmove(t.p, t.p + 1, sizeof t.p[0] * (size_t)(want - 1));
            memmove(t.n, t.n + 1, sizeof t.n[0] * (size_t)(want - 1));
        }
        g->rows[g->count++] = t;
    }
    return 0;
malformed:
    PyErr_SetString(PyExc_ValueError, "not binary COPY tuples of graph rows");
    return -1;
}

static int graph_rows_sort(graph_rows *g) {
    if (!g->count) return 0;
    g->order = PyMem_Malloc((size_t)g->count * sizeof *g->order);
    if (!g->order) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < g->count; i++) g->order[i] = &g->rows[i];
    qsort(g->order, (size_t)g->count, sizeof *g->order, compare_ids);
    return 0;
}

/* `out`'s bytes to `update` (a hash's update method), as a memoryview released after the
 * call; `out` is then empty. */
static int flush_to(buf *out, PyObject *update) {
    if (!out->n) return 0;
    PyObject *view = PyMemoryView_FromMemory(out->p, out->n, PyBUF_READ);
    if (!view) return -1;
    PyObject *done = PyObject_CallOneArg(update, view);
    PyObject *released = PyObject_CallMethod(view, "release", NULL);
    Py_DECREF(view);
    Py_XDECREF(released);
    if (!done || !released) {
        Py_XDECREF(done);
        return -1;
    }
    Py_DECREF(done);
    out->n = 0;
    return 0;
}

/* Bytes of fragments held before they go to the hash: big enough that a call per flush
 * costs nothing, small enough to stay in the cache and never to fault in fresh pages
 * (the whole text of 10,000 edges is ~2.5 MB). */
#define DIGEST_FLUSH (64 * 1024)

/* The sorted rows' fragments joined by commas (after a comma if `comma`) into `out`;
 * with `update`, to it whenever DIGEST_FLUSH bytes are held and at the end. */
static int write_fragments(const graph_rows *g, int edge, int comma, buf *out, PyObject *update) {
    if (g->count && comma && buf_add(out, ",", 1) < 0) return -1;
    for (Py_ssize_t i = 0; i < g->count; i++) {
        if ((i && buf_add(out, ",", 1) < 0) || fragment(out, g->order[i], edge) < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "not binary COPY tuples of graph rows");
            return -1;
        }
        if (update && out->n >= DIGEST_FLUSH && flush_to(out, update) < 0) return -1;
    }
    return update ? flush_to(out, update) : 0;
}

PyDoc_STRVAR(graph_fragments_doc,
"graph_fragments(copy, edges, scoped) -> (text, rows)\n\n"
"The C3 fragments of node rows (edges: edge rows) in id order, joined by commas, from\n"
"binary COPY tuples (a whole COPY, or bare tuples); `scoped`: each starts with a scope\n"
"field, skipped. The columns as row_columns gives them.");

static PyObject *graph_fragments(PyObject *self, PyObject *args) {
    Py_buffer data;
    int edge, scoped;
    if (!PyArg_ParseTuple(args, "y*pp", &data, &edge, &scoped)) return NULL;
    PyObject *result = NULL;
    graph_rows g = {0};
    buf out = {0};
    if (graph_rows_read(&g, &data, (edge ? 7 : 5) + (scoped ? 1 : 0), scoped) < 0 ||
        graph_rows_sort(&g) < 0 ||
        /* A fragment is its row's fields and ~100 bytes of keys: twice the tuples, or more. */
        buf_reserve(&out, data.len * 2) < 0 || write_fragments(&g, edge, 0, &out, NULL) < 0)
        goto done;
    result = Py_BuildValue("(y#n)", out.p ? out.p : "", out.n, g.count);
done:
    graph_rows_free(&g);
    PyMem_Free(out.p);
    PyBuffer_Release(&data);
    return result;
}

PyDoc_STRVAR(graph_digest_doc,
"graph_digest(parts, edges, scoped, update, comma, limit) -> rows\n\n"
"graph_fragments of the tuples of all `parts` (a sequence of bytes-like objects), streamed\n"
"to `update` (a hash's update method) a few dozen kB at a time, after a comma if `comma`\n"
"and there is any row: the text never exists whole. More than `limit` rows (limit >= 0):\n"
"-1, and nothing goes to `update`.");

static PyObject *graph_digest(PyObject *self, PyObject *args) {
    PyObject *parts, *update;
    int edge, scoped, comma;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "OppOpn", &parts, &edge, &scoped, &update, &comma, &limit))
        return NULL;
    PyObject *seq = PySequence_Fast(parts, "parts must be a sequence of bytes-like objects");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), held = 0;
    PyObject *result = NULL;
    graph_rows g = {0};
    buf out = {0};
    Py_buffer *views = PyMem_Calloc((size_t)(n ? n : 1), sizeof *views);
    if (!views) {
        PyErr_NoMemory();
        goto done;
    }
    /* The rows point into the parts: every view is held until the text is written. */
    for (; held < n; held++) {
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, held), &views[held], PyBUF_SIMPLE) < 0 ||
            graph_rows_read(&g, &views[held], (edge ? 7 : 5) + (scoped ? 1 : 0), scoped) < 0) {
            if (views[held].obj) held++;
            goto done;
        }
    }
    if (limit >= 0 && g.count > limit) {
        result = PyLong_FromLong(-1);
        goto done;
    }
    if (graph_rows_sort(&g) < 0 || buf_reserve(&out, DIGEST_FLUSH + 4096) < 0 ||
        write_fragments(&g, edge, comma, &out, update) < 0)
        goto done;
    result = PyLong_FromSsize_t(g.count);
done:
    for (Py_ssize_t i = 0; i < held; i++) PyBuffer_Release(&views[i]);
    PyMem_Free(views);
    graph_rows_free(&g);
    PyMem_Free(out.p);
    Py_DECREF(seq);
    return result;
}

PyDoc_STRVAR(sha256_doc, "sha256_hex(data) -> str: the SHA-256 of bytes in hex, as the pass computes it.");

static PyObject *py_sha256_hex(PyObject *self, PyObject *args) {
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*", &data)) return NULL;
    char hex[64];
    sha256_hex(data.buf, (size_t)data.len, hex);
    PyBuffer_Release(&data);
    return PyUnicode_FromStringAndSize(hex, 64);
}

PyDoc_STRVAR(use_sha256_doc,
"use_sha256(init, update, final) -> None: hash with the C functions at these addresses,\n"
"of OpenSSL's SHA256_Init/Update/Final signatures; zeros: with the portable code.");

static PyObject *use_sha256(PyObject *self, PyObject *args) {
    unsigned long long init, update, final;
    if (!PyArg_ParseTuple(args, "KKK", &init, &update, &final)) return NULL;
    if (init && update && final) {
        ossl_init = (sha256_init_fn)(uintptr_t)init;
        ossl_update = (sha256_update_fn)(uintptr_t)update;
        ossl_final = (sha256_final_fn)(uintptr_t)final;
    } else {
        ossl_init = NULL;
        ossl_update = NULL;
        ossl_final = NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"feed", feed, METH_VARARGS, feed_doc},
    {"sha256_hex", py_sha256_hex, METH_VARARGS, sha256_doc},
    {"use_sha256", use_sha256, METH_VARARGS, use_sha256_doc},
    {"graph_fragments", graph_fragments, METH_VARARGS, graph_fragments_doc},
    {"graph_digest", graph_digest, METH_VARARGS, graph_digest_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native_projection",
    "A native pass of the whole-log projection (ADR 0017).", -1, methods, NULL, NULL, NULL, NULL};

static PyObject *intern(const char *s) { return PyUnicode_InternFromString(s); }

PyMODINIT_FUNC PyInit__native_projection(void) {
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    c3_plain_init();
    Unsupported = PyErr_NewException("_native_projection.Unsupported", NULL, NULL);
    if (!Unsupported || PyModule_AddObjectRef(m, "Unsupported", Unsupported) < 0) return NULL;
    if (!(S_trace = intern("trace")) || !(S_actor = intern("actor")) ||
        !(S_entity = intern("entity")) || !(S_input = intern("input")) ||
        !(S_policy = intern("policy")) || !(S_exception = intern("exception")) ||
        !(S_action = intern("action")) ||
        !(E_involves = intern("trace_involves_entity")) ||
        !(E_observed = intern("trace_observed_input")) ||
        !(E_evaluated = intern("trace_evaluated_policy")) ||
        !(E_requested = intern("trace_requested_exception")) ||
        !(E_approved = intern("exception_approved_by")) ||
        !(E_cited = intern("trace_cited_precedent")) ||
        !(E_proposed = intern("trace_proposed_action")) ||
        !(E_targets = intern("action_targets_entity")) ||
        !(E_committed = intern("trace_committed_action")))
        return NULL;
    return m;
}
