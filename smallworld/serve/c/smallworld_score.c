/* smallworld_score.c: a dependency-free reference scorer for smallworld linear models (C99, libc + libm).
 *
 *   cc -O2 -std=c99 -o smallworld_score smallworld_score.c -lm
 *   ./smallworld_score MODEL_DIR < items.txt > scores.txt
 *
 * Reads MODEL_DIR/model.json and MODEL_DIR/weights.bin as written by smallworld.student.modelfile (float32,
 * float16 or int8 weights; size and sha256 are checked), then reads newline-delimited items on stdin and
 * prints, for every input line (blank lines included, so output line i belongs to input line i), the
 * probability of the positive label as "%.7f\n". A trailing "\r" (or several) is stripped from each line,
 * as smallworld's readers do. The positive label is the model's task.positive, else the first label.
 *
 * Features follow the definition in smallworld/student/features.py exactly: UTF-8 bytes (at most
 * max_bytes), optionally ASCII-lowercased, framed as 0x02 + bytes + 0x03; every byte n-gram with
 * ngram_min <= n <= ngram_max hashed with 32-bit FNV-1a; if tokens, every maximal run of word bytes (ASCII
 * letters and digits, bytes >= 0x80) hashed with FNV-1a from the state after a 0x01 byte; each occurrence
 * adds 1 to bucket hash & (2^dim_bits - 1), and the vector is scaled by 1/sqrt(count). Logits are
 * b + W^T x accumulated in double; the probability is their softmax. Input bytes are hashed as they are
 * (no UTF-8 validation, no task normaliser: models whose task normaliser is not "none" are refused).
 *
 * Malformed, oversized or truncated model files are refused with a message on stderr and exit status 2.
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The bounds of smallworld/student/model.schema.json (tests/reliability/test_model_schema.py checks them) */
#define MAX_JSON_BYTES (4L * 1024 * 1024) /* max_json_bytes */
#define MAX_WEIGHTS_BYTES (1L << 30)      /* max_weights_bytes */
#define MAX_LABELS 256                    /* fields.labels.max_items */
#define MAX_ITEM_BYTES 16777216L          /* features.max_bytes.max */
#define MAX_DEPTH 64
#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u

static const char *prog = "smallworld_score";

static void die(const char *where, const char *what) {
    fprintf(stderr, "%s: %s: %s\n", prog, where, what);
    exit(2);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die("memory", "out of memory");
    return p;
}

/* ---------------------------------------------------------------------------------------------------- */
/* A small, strict JSON parser (RFC 8259) into a tree.                                                   */

enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct jv {
    int type;
    double num;           /* J_NUM, J_BOOL */
    int isint;            /* J_NUM: written as an integer (no fraction, no exponent) */
    char *str;            /* J_STR: UTF-8, NUL-terminated (may contain NUL from \u0000; len is exact) */
    size_t len;
    size_t n;             /* J_ARR, J_OBJ: number of children */
    struct jv *kids;
    char **keys;          /* J_OBJ */
} jv;

typedef struct {
    const char *p, *end;
    const char *err;
} jparser;

static void jfree(jv *v) {
    size_t i;
    free(v->str);
    for (i = 0; i < v->n; i++) {
        jfree(&v->kids[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->kids);
    free(v->keys);
}

static void jws(jparser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static int hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* parses a string starting at the opening quote; returns a malloc'd UTF-8 copy */
static char *jstring(jparser *ps, size_t *len) {
    const char *s = ps->p + 1;
    size_t cap = 0, n = 0;
    char *out;
    const char *q;
    for (q = s; q < ps->end && *q != '"'; q++) {
        if (*q == '\\') q++;
        cap++;
    }
    if (q >= ps->end) { ps->err = "unterminated string"; return NULL; }
    out = xmalloc(cap * 3 + 1); /* an escape of 2..6 source bytes yields at most 4 (pairs: 12 -> 4) bytes */
    while (s < ps->end && *s != '"') {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20) { ps->err = "control character in string"; free(out); return NULL; }
        if (c != '\\') { out[n++] = (char)c; s++; continue; }
        if (s + 1 >= ps->end) break;
        switch (s[1]) {
        case '"': out[n++] = '"'; s += 2; break;
        case '\\': out[n++] = '\\'; s += 2; break;
        case '/': out[n++] = '/'; s += 2; break;
        case 'b': out[n++] = '\b'; s += 2; break;
        case 'f': out[n++] = '\f'; s += 2; break;
        case 'n': out[n++] = '\n'; s += 2; break;
        case 'r': out[n++] = '\r'; s += 2; break;
        case 't': out[n++] = '\t'; s += 2; break;
        case 'u': {
            unsigned cp, lo;
            if (ps->end - s < 6 || !hex4(s + 2, &cp)) { ps->err = "bad \\u escape"; free(out); return NULL; }
            s += 6;
            if (cp >= 0xD800 && cp < 0xDC00 && ps->end - s >= 6 && s[0] == '\\' && s[1] == 'u' && hex4(s + 2, &lo)
                && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                s += 6;
            }
            n += put_utf8(out + n, cp);
            break;
        }
        default: ps->err = "bad escape in string"; free(out); return NULL;
        }
    }
    if (s >= ps->end) { ps->err = "unterminated string"; free(out); return NULL; }
    ps->p = s + 1;
    out[n] = 0;
    *len = n;
    return out;
}

static int jnumber(jparser *ps, double *out, int *isint) {
    const char *s = ps->p, *q = s;
    char tmp[64];
    *isint = 1;
    if (q < ps->end && *q == '-') q++;
    if (q >= ps->end) return 0;
    if (*q == '0') q++;
    else if (*q >= '1' && *q <= '9') while (q < ps->end && *q >= '0' && *q <= '9') q++;
    else return 0;
    if (q < ps->end && *q == '.') {
        *isint = 0;
        q++;
        if (q >= ps->end || *q < '0' || *q > '9') return 0;
        while (q < ps->end && *q >= '0' && *q <= '9') q++;
    }
    if (q < ps->end && (*q == 'e' || *q == 'E')) {
        *isint = 0;
        q++;
        if (q < ps->end && (*q == '+' || *q == '-')) q++;
        if (q >= ps->end || *q < '0' || *q > '9') return 0;
        while (q < ps->end && *q >= '0' && *q <= '9') q++;
    }
    if ((size_t)(q - s) >= sizeof tmp) return 0;
    memcpy(tmp, s, (size_t)(q - s));
    tmp[q - s] = 0;
    *out = strtod(tmp, NULL);
    ps->p = q;
    return 1;
}

static int jvalue(jparser *ps, jv *v, int depth);

static int jcontainer(jparser *ps, jv *v, int depth, int obj) {
    size_t cap = 0;
    char close = obj ? '}' : ']';
    v->type = obj ? J_OBJ : J_ARR;
    ps->p++;
    jws(ps);
    if (ps->p < ps->end && *ps->p == close) { ps->p++; return 1; }
    for (;;) {
        char *key = NULL;
        size_t klen;
        if (obj) {
            jws(ps);
            if (ps->p >= ps->end || *ps->p != '"') { ps->err = "expected a key"; return 0; }
            if (!(key = jstring(ps, &klen))) return 0;
            jws(ps);
            if (ps->p >= ps->end || *ps->p != ':') { free(key); ps->err = "expected ':'"; return 0; }
            ps->p++;
        }
        if (v->n == cap) {
            cap = cap ? cap * 2 : 8;
            v->kids = realloc(v->kids, cap * sizeof *v->kids);
            if (obj) v->keys = realloc(v->keys, cap * sizeof *v->keys);
            if (!v->kids || (obj && !v->keys)) die("memory", "out of memory");
        }
        memset(&v->kids[v->n], 0, sizeof *v->kids);
        if (obj) v->keys[v->n] = key;
        v->n++;
        if (!jvalue(ps, &v->kids[v->n - 1], depth + 1)) return 0;
        jws(ps);
        if (ps->p >= ps->end) { ps->err = "unexpected end of file"; return 0; }
        if (*ps->p == ',') { ps->p++; continue; }
        if (*ps->p == close) { ps->p++; return 1; }
        ps->err = obj ? "expected ',' or '}'" : "expected ',' or ']'";
        return 0;
    }
}

static int jvalue(jparser *ps, jv *v, int depth) {
    if (depth > MAX_DEPTH) { ps->err = "nested too deeply"; return 0; }
    jws(ps);
    if (ps->p >= ps->end) { ps->err = "unexpected end of file"; return 0; }
    switch (*ps->p) {
    case '{': return jcontainer(ps, v, depth, 1);
    case '[': return jcontainer(ps, v, depth, 0);
    case '"': v->type = J_STR; return (v->str = jstring(ps, &v->len)) != NULL;
    case 't': case 'f': case 'n': {
        static const char *lits[] = {"true", "false", "null"};
        int i;
        for (i = 0; i < 3; i++) {
            size_t l = strlen(lits[i]);
            if ((size_t)(ps->end - ps->p) >= l && memcmp(ps->p, lits[i], l) == 0) {
                ps->p += l;
                v->type = i == 2 ? J_NULL : J_BOOL;
                v->num = i == 0;
                return 1;
            }
        }
        ps->err = "invalid literal";
        return 0;
    }
    default:
        v->type = J_NUM;
        if (!jnumber(ps, &v->num, &v->isint)) { ps->err = "invalid number"; return 0; }
        return 1;
    }
}

/* the last value under key (Python's json keeps the last of duplicate keys), or NULL */
static const jv *jget(const jv *o, const char *key) {
    size_t i;
    if (!o || o->type != J_OBJ) return NULL;
    for (i = o->n; i-- > 0;)
        if (strcmp(o->keys[i], key) == 0) return &o->kids[i];
    return NULL;
}

/* ---------------------------------------------------------------------------------------------------- */
/* SHA-256 (FIPS 180-4), to check weights.bin against model.json as the Python loader does.              */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t st[8], const unsigned char *p) {
    uint32_t w[64], a, b, c, d, e, f, g, h, t1, t2;
    int i;
    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = st[0]; b = st[1]; c = st[2]; d = st[3]; e = st[4]; f = st[5]; g = st[6]; h = st[7];
    for (i = 0; i < 64; i++) {
        t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    st[0] += a; st[1] += b; st[2] += c; st[3] += d; st[4] += e; st[5] += f; st[6] += g; st[7] += h;
}

static void sha256_hex(const unsigned char *data, size_t n, char hex[65]) {
    uint32_t st[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    unsigned char tail[128];
    size_t i, full = n / 64 * 64, rest = n - full, tl = rest < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (i = 0; i < full; i += 64) sha256_block(st, data + i);
    memset(tail, 0, sizeof tail);
    memcpy(tail, data + full, rest);
    tail[rest] = 0x80;
    for (i = 0; i < 8; i++) tail[tl - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (i = 0; i < tl; i += 64) sha256_block(st, tail + i);
    for (i = 0; i < 8; i++) sprintf(hex + 8 * i, "%08x", (unsigned)st[i]);
}

/* ---------------------------------------------------------------------------------------------------- */
/* The model.                                                                                            */

typedef struct {
    int nmin, nmax, tokens, lower, dim_bits;
    long max_bytes;
    int K, pos;
    uint32_t mask;
    float *W; /* dim x K, row-major */
    float *b; /* K */
} model;

/* strict UTF-8 (no overlongs, no surrogates), as Python's decoder */
static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], need, cp, k;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; }
        else return 0;
        if (i + need >= n) return 0;
        for (k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((need == 2 && (cp < 0x800 || (cp >= 0xD800 && cp < 0xE000))) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        i += need + 1;
    }
    return 1;
}

static char *read_file(const char *path, long limit, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (!f) die(path, "cannot open");
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) die(path, "cannot read");
    if (n > limit) die(path, "larger than the format allows; refusing to read");
    buf = xmalloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) die(path, "cannot read");
    fclose(f);
    buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

static long int_field(const char *where, const jv *o, const char *key, long dflt, int required) {
    const jv *v = jget(o, key);
    static char msg[160];
    if (!v) {
        if (required) { snprintf(msg, sizeof msg, "missing field '%s'", key); die(where, msg); }
        return dflt;
    }
    if (v->type != J_NUM || !v->isint || fabs(v->num) > 2147483647.0) {
        snprintf(msg, sizeof msg, "field '%s' must be an integer", key);
        die(where, msg);
    }
    return (long)v->num;
}

static int bool_field(const char *where, const jv *o, const char *key, int dflt) {
    const jv *v = jget(o, key);
    static char msg[160];
    if (!v) return dflt;
    if (v->type != J_BOOL) {
        snprintf(msg, sizeof msg, "field '%s' must be true or false", key);
        die(where, msg);
    }
    return v->num != 0;
}

static float half_to_float(unsigned h) {
    unsigned e = (h >> 10) & 0x1F, m = h & 0x3FF;
    float v;
    if (e == 0) v = ldexpf((float)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexpf((float)(m | 0x400), (int)e - 25);
    return (h & 0x8000) ? -v : v;
}

static void load_model(const char *dir, model *m) {
    static char jpath[4096], wpath[4096], msg[256];
    static const char *known[] = {"ngram_min", "ngram_max", "tokens", "lowercase", "dim_bits", "max_bytes"};
    size_t jlen, wlen, i, j, nval, itemsize;
    char *text, *blob, hex[65];
    jparser ps;
    jv root, *h = &root;
    const jv *labels, *feats, *dtype, *task, *v;
    long dim, classes, wbytes;
    double scale = 1.0;
    int dt;

    if (snprintf(jpath, sizeof jpath, "%s/model.json", dir) >= (int)sizeof jpath ||
        snprintf(wpath, sizeof wpath, "%s/weights.bin", dir) >= (int)sizeof wpath)
        die(dir, "path too long");
    text = read_file(jpath, MAX_JSON_BYTES, &jlen);
    if (!valid_utf8((const unsigned char *)text, jlen)) die(jpath, "not valid JSON (not UTF-8)");
    memset(&root, 0, sizeof root);
    ps.p = text; ps.end = text + jlen; ps.err = NULL;
    if (!jvalue(&ps, &root, 0)) { snprintf(msg, sizeof msg, "not valid JSON (%s)", ps.err); die(jpath, msg); }
    jws(&ps);
    if (ps.p != ps.end) die(jpath, "not valid JSON (extra data after the value)");
    free(text);
    if (h->type != J_OBJ || !(v = jget(h, "format")) || v->type != J_STR || strcmp(v->str, "smallworld-linear") != 0)
        die(jpath, "not a smallworld-linear model file");
    if (int_field(jpath, h, "version", 0, 1) != 1) die(jpath, "format version is not 1");

    labels = jget(h, "labels");
    if (!labels || labels->type != J_ARR || labels->n < 2 || labels->n > MAX_LABELS)
        die(jpath, "'labels' must be a list of 2 to 256 strings");
    for (i = 0; i < labels->n; i++)
        if (labels->kids[i].type != J_STR) die(jpath, "'labels' must be a list of 2 to 256 strings");

    feats = jget(h, "features");
    if (!feats || feats->type != J_OBJ) die(jpath, "missing field 'features'");
    for (i = 0; i < feats->n; i++) {
        for (j = 0; j < sizeof known / sizeof *known && strcmp(feats->keys[i], known[j]) != 0; j++) {}
        if (j == sizeof known / sizeof *known) {
            snprintf(msg, sizeof msg, "unknown feature setting '%.64s'", feats->keys[i]);
            die(jpath, msg);
        }
    }
    /* missing settings take the defaults of smallworld.student.features.DEFAULTS */
    m->nmin = (int)int_field(jpath, feats, "ngram_min", 1, 0);
    m->nmax = (int)int_field(jpath, feats, "ngram_max", 5, 0);
    m->tokens = bool_field(jpath, feats, "tokens", 1);
    m->lower = bool_field(jpath, feats, "lowercase", 1);
    m->dim_bits = (int)int_field(jpath, feats, "dim_bits", 18, 0);
    m->max_bytes = int_field(jpath, feats, "max_bytes", 4096, 0);
    if (!(1 <= m->nmin && m->nmin <= m->nmax && m->nmax <= 16)) die(jpath, "need 1 <= ngram_min <= ngram_max <= 16");
    if (m->dim_bits < 8 || m->dim_bits > 26) die(jpath, "dim_bits must be between 8 and 26");
    if (m->max_bytes < 1 || m->max_bytes > MAX_ITEM_BYTES) die(jpath, "max_bytes must be between 1 and 16777216");
    m->mask = (uint32_t)((1UL << m->dim_bits) - 1);

    dim = int_field(jpath, h, "dim", 0, 1);
    classes = int_field(jpath, h, "classes", 0, 1);
    if (dim != 1L << m->dim_bits || classes != (long)labels->n)
        die(jpath, "dim/classes do not match the feature settings and labels");
    m->K = (int)classes;

    dtype = jget(h, "dtype");
    if (!dtype || dtype->type != J_STR) die(jpath, "missing field 'dtype'");
    if (strcmp(dtype->str, "float32") == 0) { dt = 0; itemsize = 4; }
    else if (strcmp(dtype->str, "float16") == 0) { dt = 1; itemsize = 2; }
    else if (strcmp(dtype->str, "int8") == 0) { dt = 2; itemsize = 1; }
    else die(jpath, "unknown dtype");
    if (dt == 2) {
        v = jget(h, "scale");
        if (!v || v->type != J_NUM || !(v->num > 0) || !isfinite(v->num)) die(jpath, "int8 weights need a positive 'scale'");
        scale = v->num;
    }
    nval = (size_t)dim * (size_t)m->K + (size_t)m->K;
    wbytes = int_field(jpath, h, "weights_bytes", 0, 1);
    if (wbytes != (long)(nval * itemsize) || wbytes > MAX_WEIGHTS_BYTES)
        die(jpath, "weights_bytes does not match dim x classes x dtype");
    v = jget(h, "weights_sha256");
    if (!v || v->type != J_STR || v->len != 64 || strspn(v->str, "0123456789abcdef") != 64)
        die(jpath, "'weights_sha256' must be 64 lowercase hex digits");

    /* the positive label: the task's, else the first */
    m->pos = 0;
    task = jget(h, "task");
    if (task && task->type == J_OBJ) {
        const jv *p = jget(task, "positive"), *nz = jget(task, "normaliser");
        if (!p || p->type != J_STR) die(jpath, "task has no 'positive' label");
        for (i = 0; i < labels->n && strcmp(labels->kids[i].str, p->str) != 0; i++) {}
        if (i == labels->n) die(jpath, "the task's positive label is not among the labels");
        m->pos = (int)i;
        if (nz && !(nz->type == J_STR && strcmp(nz->str, "none") == 0))
            die(jpath, "the task normalises items before scoring; this scorer supports normaliser \"none\" only");
    }

    /* thresholds (not used here, but a file the Python loader refuses is refused here too) */
    v = jget(h, "thresholds");
    if (v && v->type != J_NULL) {
        if (v->type != J_OBJ) die(jpath, "'thresholds' must be a table of numbers");
        for (i = 0; i < v->n; i++)
            if (v->kids[i].type != J_NUM || !(v->kids[i].num >= 0 && v->kids[i].num <= 1))
                die(jpath, "a threshold must be a number in [0, 1]");
    }
    v = jget(h, "weights_sha256");

    blob = read_file(wpath, MAX_WEIGHTS_BYTES, &wlen);
    if ((long)wlen != wbytes) {
        snprintf(msg, sizeof msg, "%lu bytes, model.json says %ld (truncated?)", (unsigned long)wlen, wbytes);
        die(wpath, msg);
    }
    sha256_hex((const unsigned char *)blob, wlen, hex);
    if (strcmp(hex, v->str) != 0) die(wpath, "sha256 does not match model.json (corrupted or altered)");

    m->W = xmalloc(nval * sizeof(float));
    for (i = 0; i < nval; i++) {
        const unsigned char *p = (const unsigned char *)blob + i * itemsize;
        float x;
        if (dt == 0) {
            uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            memcpy(&x, &u, 4);
        } else if (dt == 1) {
            x = half_to_float((unsigned)p[0] | (unsigned)p[1] << 8);
        } else {
            x = (float)(signed char)p[0] * (float)scale; /* float32 product, as the Python loader */
        }
        if (!isfinite(x)) die(wpath, "weights contain NaN or infinity");
        m->W[i] = x;
    }
    m->b = m->W + (size_t)dim * m->K;
    free(blob);
    jfree(&root);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Scoring.                                                                                              */

static unsigned char *framed;  /* 0x02 + item bytes (lowercased) + 0x03 */
static size_t framed_cap;
static double *acc, *z;

static double score(const model *m, const unsigned char *s, size_t len) {
    size_t L = len > (size_t)m->max_bytes ? (size_t)m->max_bytes : len, F = L + 2, i, j;
    int n, c, K = m->K;
    long k = 0;
    uint32_t h;
    double sc, mx, sum;
    if (F > framed_cap) {
        framed_cap = F * 2;
        free(framed);
        framed = xmalloc(framed_cap);
    }
    framed[0] = 2;
    for (j = 0; j < L; j++) {
        unsigned char ch = s[j];
        framed[j + 1] = (m->lower && ch >= 'A' && ch <= 'Z') ? (unsigned char)(ch + 32) : ch;
    }
    framed[L + 1] = 3;
    for (c = 0; c < K; c++) acc[c] = 0.0;
#define ADD(hash)                                                             \
    do {                                                                      \
        const float *row = m->W + (size_t)((hash) & m->mask) * (size_t)K;    \
        for (c = 0; c < K; c++) acc[c] += row[c];                             \
        k++;                                                                  \
    } while (0)
    for (i = 0; i < F; i++) {
        h = FNV_OFFSET;
        for (n = 1; n <= m->nmax && i + (size_t)n <= F; n++) {
            h = (h ^ framed[i + n - 1]) * FNV_PRIME;
            if (n >= m->nmin) ADD(h);
        }
    }
    if (m->tokens) {
        const uint32_t h0 = (FNV_OFFSET ^ 1u) * FNV_PRIME;
        int inword = 0;
        h = h0;
        for (j = 0; j < L; j++) {
            unsigned char ch = framed[j + 1];
            if ((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch >= 0x80) {
                h = (h ^ ch) * FNV_PRIME;
                inword = 1;
            } else if (inword) {
                ADD(h);
                h = h0;
                inword = 0;
            }
        }
        if (inword) ADD(h);
    }
#undef ADD
    sc = k > 0 ? 1.0 / sqrt((double)k) : 0.0;
    mx = -INFINITY;
    for (c = 0; c < K; c++) {
        z[c] = (double)m->b[c] + acc[c] * sc;
        if (z[c] > mx) mx = z[c];
    }
    sum = 0.0;
    for (c = 0; c < K; c++) sum += (z[c] = exp(z[c] - mx));
    return z[m->pos] / sum;
}

int main(int argc, char **argv) {
    static unsigned char block[1 << 20];
    unsigned char *line = NULL; /* a line that spans blocks: its first max_bytes bytes */
    size_t line_cap = 0, kept = 0, total = 0, trailing_cr = 0, got, i, start;
    model m;

    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: %s MODEL_DIR < items.txt > scores.txt\n", prog);
        return 2;
    }
    load_model(argv[1], &m);
    acc = xmalloc((size_t)m.K * sizeof *acc);
    z = xmalloc((size_t)m.K * sizeof *z);
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);

    /* total (bytes so far), kept (the first max_bytes of them) and trailing_cr describe a line that started in
       an earlier block; total == 0: none */
    while ((got = fread(block, 1, sizeof block, stdin)) > 0) {
        start = 0;
        for (i = 0; i <= got; i++) {
            size_t seg, take, r;
            int nl = i < got && block[i] == '\n';
            if (i < got && !nl) continue;
            seg = i - start;
            if (nl && total == 0) {
                /* the whole line is in this block: score it in place */
                size_t e = i;
                while (e > start && block[e - 1] == '\r') e--;
                printf("%.7f\n", score(&m, block + start, e - start));
                start = i + 1;
                continue;
            }
            /* append the segment to the pending line (keeping at most max_bytes bytes) */
            take = kept < (size_t)m.max_bytes ? (size_t)m.max_bytes - kept : 0;
            if (take > seg) take = seg;
            if (kept + take > line_cap) {
                line_cap = (kept + take) * 2;
                line = realloc(line, line_cap);
                if (!line) die("memory", "out of memory");
            }
            memcpy(line + kept, block + start, take);
            kept += take;
            for (r = 0; r < seg && block[start + seg - 1 - r] == '\r'; r++) {}
            trailing_cr = r == seg ? trailing_cr + seg : r;
            total += seg;
            if (nl) {
                size_t L = total - trailing_cr;
                printf("%.7f\n", score(&m, line, L < kept ? L : kept));
                kept = total = trailing_cr = 0;
            }
            start = i + 1;
        }
    }
    if (ferror(stdin)) die("stdin", "read error");
    if (total > 0) {
        size_t L = total - trailing_cr;
        printf("%.7f\n", score(&m, line, L < kept ? L : kept));
    }
    if (fflush(stdout) != 0) die("stdout", "write error");
    free(line);
    return 0;
}
