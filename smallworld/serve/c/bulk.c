/* smallworld.serve._cbulk: the bulk plain-lines kernel compiled ahead of time (built with the package; optional).
 *
 * jsonl_rows(buf, ends, first, nmin, nmax, tokens, lower, max_bytes, mask, w, b0, thr, yes, no, max_line, out)
 * is smallworld/serve/bulk.py's jsonl_rows, line for line: it scores the lines of one block with a two-class
 * linear model (one weight column w, float32 or float64, and a bias b0), summing the weights in the order of
 * smallworld.student.features.reference_prob, and writes each row as {"id": "N", "score": S, "decision": ...}
 * with S written as Python's json.dumps(round(p, 6)). Returns (bytes written, rows), or (-1, 0) when a line
 * has a NUL byte, invalid UTF-8 or is longer than max_line (the caller then reads the block line by line), or
 * (-2, bytes needed) when out is too small. An empty ends: the lines are found here (one pass, memchr).
 * A process that scores a file with it pays no JIT, no numba import and no kernel-cache load.
 * Floating point is IEEE double without contraction (built with -ffp-contract=off), as numba's is.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u

static int is_word(unsigned c) { return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c >= 128; }

typedef struct {
    int nmin, nmax, tokens, lower;
    long max_bytes;
    uint32_t mask;
    const void *w;
    int w64;
} cfg_t;

static unsigned char WORD[256];

static inline __attribute__((always_inline)) double wt(const cfg_t *c, uint32_t i, int w64) {
    return w64 ? ((const double *)c->w)[i] : (double)((const float *)c->w)[i];
}

/* (sum of w over the item's feature occurrences, their count): kernels._sum, in the same order: the n-grams
 * position by position (longest first), then the tokens in the order they end. fr holds the item as the hash
 * sees it: 2, the (lowered, cut to max_bytes) bytes, 3. The token hashes are made in the n-gram loop itself
 * (branch-free: a token's hash is stored when the byte after it is not a word byte) and their weights summed
 * after the n-grams, so the sum is the reference's, bit for bit, in one pass over the bytes. */
#define TOKEN_STEP(b)                                                         \
    if (tok) {                                                               \
        uint32_t wd_ = WORD[b];                                              \
        toks[nt] = th;                                                       \
        nt += inword & (wd_ ^ 1u);                                           \
        th = (((th ^ (b)) * FNV_PRIME) & (0u - wd_)) | (th0 & (wd_ - 1u));  \
        inword = wd_;                                                        \
    }

static inline __attribute__((always_inline)) double sum_impl(const cfg_t *c, const unsigned char *fr, long L, int nmin,
                                                             int nmax, int w64, int tok, uint32_t *toks, long *kout) {
    uint32_t hs[17];
    const uint32_t th0 = (FNV_OFFSET ^ 1u) * FNV_PRIME;
    uint32_t th = th0, inword = 0;
    long F = L + 2, j = 0, k = 0, nt = 0, t;
    double total = 0.0;
    hs[0] = FNV_OFFSET;
    while (j < F && j < nmax - 1) { /* the first bytes end fewer than nmax n-grams */
        uint32_t b = fr[j];
        int n;
        for (n = (int)j + 1; n > 0; n--) {
            uint32_t h = (hs[n - 1] ^ b) * FNV_PRIME;
            hs[n] = h;
            if (n >= nmin) { total += wt(c, h & c->mask, w64); k++; }
        }
        TOKEN_STEP(b)
        j++;
    }
    if (j < F) k += (F - j) * (nmax - nmin + 1);
    if (nmax == 5 && j < F) { /* the usual longest length: the running hashes in registers */
        uint32_t h1 = hs[1], h2 = hs[2], h3 = hs[3], h4 = hs[4];
        for (; j < F; j++) {
            uint32_t b = fr[j];
            uint32_t n5 = (h4 ^ b) * FNV_PRIME, n4 = (h3 ^ b) * FNV_PRIME, n3 = (h2 ^ b) * FNV_PRIME;
            uint32_t n2 = (h1 ^ b) * FNV_PRIME, n1 = (FNV_OFFSET ^ b) * FNV_PRIME;
            double part = 0.0;
            part += wt(c, n5 & c->mask, w64);
            if (nmin <= 4) part += wt(c, n4 & c->mask, w64);
            if (nmin <= 3) part += wt(c, n3 & c->mask, w64);
            if (nmin <= 2) part += wt(c, n2 & c->mask, w64);
            if (nmin <= 1) part += wt(c, n1 & c->mask, w64);
            total += part;
            h4 = n4; h3 = n3; h2 = n2; h1 = n1;
            TOKEN_STEP(b)
        }
    }
    for (; j < F; j++) {
        uint32_t b = fr[j];
        double part = 0.0;
        int n;
        for (n = nmax; n > 0; n--) {
            uint32_t h = (hs[n - 1] ^ b) * FNV_PRIME;
            hs[n] = h;
            if (n >= nmin) part += wt(c, h & c->mask, w64);
        }
        total += part;
        TOKEN_STEP(b)
    }
    for (t = 0; t < nt; t++) total += wt(c, toks[t] & c->mask, w64);
    *kout = k + nt;
    return total;
}

/* the n-gram lengths, tokens and the weights' type as constants for the usual settings (loops unrolled) */
#define SUM_CASES(W64, TOK)                                                                  \
    switch (c->nmin * 32 + c->nmax) {                                                        \
    case 1 * 32 + 5: return sum_impl(c, fr, L, 1, 5, W64, TOK, toks, k);                     \
    case 3 * 32 + 5: return sum_impl(c, fr, L, 3, 5, W64, TOK, toks, k);                     \
    case 1 * 32 + 4: return sum_impl(c, fr, L, 1, 4, W64, TOK, toks, k);                     \
    case 2 * 32 + 5: return sum_impl(c, fr, L, 2, 5, W64, TOK, toks, k);                     \
    case 1 * 32 + 6: return sum_impl(c, fr, L, 1, 6, W64, TOK, toks, k);                     \
    case 3 * 32 + 6: return sum_impl(c, fr, L, 3, 6, W64, TOK, toks, k);                     \
    default: return sum_impl(c, fr, L, c->nmin, c->nmax, W64, TOK, toks, k);                 \
    }

static double sum_any(const cfg_t *c, const unsigned char *fr, long L, uint32_t *toks, long *k) {
    if (c->w64) {
        if (c->tokens) { SUM_CASES(1, 1) }
        SUM_CASES(1, 0)
    }
    if (c->tokens) { SUM_CASES(0, 1) }
    SUM_CASES(0, 0)
}

static double prob(double total, long k, double b0) {
    double z = b0 + total * (k > 0 ? 1.0 / sqrt((double)k) : 0.0), e;
    if (z >= 0.0) return 1.0 / (1.0 + exp(-z));
    e = exp(z);
    return e / (e + 1.0);
}

/* round(p, 6) * 10**6 as an integer, rounded as Python's round(p, 6): bulk.py's _micros */
static long micros(double p) {
    double y = p * 1e6, k = floor(y), f = y - k, t, hi, lo, d;
    if (fabs(f - 0.5) > 1e-6) return (long)k + (f > 0.5 ? 1 : 0);
    t = p * 134217729.0;
    hi = t - (t - p);
    lo = p - hi;
    d = (hi * 1e6 - (k + 0.5)) + lo * 1e6;
    if (d > 0.0) return (long)k + 1;
    if (d < 0.0) return (long)k;
    return (long)k + ((long)k & 1);
}

/* round(p, 6) as Python's float repr writes it: bulk.py's _put_score */
static long put_score(unsigned char *out, long o, double p) {
    long k = micros(p), last, jj;
    int ex;
    if (k == 0 || k >= 1000000) {
        out[o] = k ? '1' : '0'; out[o + 1] = '.'; out[o + 2] = '0';
        return o + 3;
    }
    if (k >= 100) {
        out[o] = '0'; out[o + 1] = '.';
        last = 6;
        while (k % 10 == 0) { k /= 10; last--; }
        for (jj = last; jj > 0; jj--) { out[o + 1 + jj] = (unsigned char)('0' + k % 10); k /= 10; }
        return o + 2 + last;
    }
    if (k >= 10 && k % 10) {
        out[o] = (unsigned char)('0' + k / 10); out[o + 1] = '.'; out[o + 2] = (unsigned char)('0' + k % 10);
        o += 3;
        ex = 5;
    } else {
        out[o] = (unsigned char)('0' + (k >= 10 ? k / 10 : k));
        o += 1;
        ex = k >= 10 ? 5 : 6;
    }
    out[o] = 'e'; out[o + 1] = '-'; out[o + 2] = '0'; out[o + 3] = (unsigned char)('0' + ex);
    return o + 4;
}

/* whether the (valid UTF-8) line is empty or whitespace as Python's str.strip() sees it: bulk.py's _blank */
static int blank(const unsigned char *b, long s, long e) {
    long j = s;
    while (j < e) {
        unsigned c = b[j];
        long cp;
        if (c < 128) {
            if (c == 32 || (c >= 9 && c <= 13) || (c >= 28 && c <= 31)) { j++; continue; }
            return 0;
        }
        if (c < 0xE0) { cp = ((long)(c & 0x1F) << 6) | (b[j + 1] & 0x3F); j += 2; }
        else if (c < 0xF0) { cp = ((long)(c & 0x0F) << 12) | ((long)(b[j + 1] & 0x3F) << 6) | (b[j + 2] & 0x3F); j += 3; }
        else return 0;
        if (!(cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
              cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000))
            return 0;
    }
    return 1;
}

/* whether b[s:e] is UTF-8 as Python's strict decoder takes it: bulk.py's _utf8 */
static int utf8(const unsigned char *b, long s, long e) {
    long i = s;
    while (i < e) {
        unsigned c = b[i], c1;
        int need, j;
        if (c < 128) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) need = 2;
        else if (c >= 0xF0 && c <= 0xF4) need = 3;
        else return 0;
        if (i + need >= e) return 0;
        c1 = b[i + 1];
        if ((c1 & 0xC0) != 0x80 || (c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0) || (c == 0xF0 && c1 < 0x90) ||
            (c == 0xF4 && c1 >= 0x90))
            return 0;
        for (j = 2; j <= need; j++)
            if ((b[i + j] & 0xC0) != 0x80) return 0;
        i += need + 1;
    }
    return 1;
}

static long put(unsigned char *out, long o, const void *src, Py_ssize_t n) {
    memcpy(out + o, src, (size_t)n);
    return o + (long)n;
}

static long put_int(unsigned char *out, long o, long long v) {
    char tmp[24];
    int n = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v > 0);
    while (n > 0) out[o++] = (unsigned char)tmp[--n];
    return o;
}

static PyObject *jsonl_rows(PyObject *self, PyObject *args) {
    Py_buffer buf, ends, w, yes, no, out;
    long long first, max_line;
    int nmin, nmax, tokens, lower, w64;
    long max_bytes;
    unsigned long mask;
    double b0, thr;
    cfg_t c;
    PyObject *res = NULL;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*Liiiilky*pddy*y*Lw*", &buf, &ends, &first, &nmin, &nmax, &tokens, &lower,
                          &max_bytes, &mask, &w, &w64, &b0, &thr, &yes, &no, &max_line, &out))
        return NULL;
    /* ends: int64 line ends within buf; w: float32 (or float64 with w64), at least mask + 1 of them; out: room
       for 48 + max(len(yes), len(no)) bytes a line */
    /* (an empty ends: the lines of buf found here, each ending at a newline or at the end of buf) */
    Py_ssize_t nlines = ends.len / 8, i;
    long long *E = ends.buf, *own = NULL;
    if (ends.len == 0 && buf.len) {
        const unsigned char *p = buf.buf, *end = p + buf.len, *q;
        for (nlines = 0, q = p; q < end && (q = memchr(q, 10, (size_t)(end - q))) != NULL; q++) nlines++;
        if (((const unsigned char *)buf.buf)[buf.len - 1] != 10) nlines++;
        E = own = PyMem_Malloc(sizeof(long long) * (size_t)nlines);
        if (!own) {
            PyErr_NoMemory();
            goto done;
        }
        for (i = 0, q = p; i < nlines; i++, q++) {
            q = memchr(q, 10, (size_t)(end - q));
            if (!q) q = end;
            E[i] = q - p;
        }
    }
    if (ends.len % 8 != 0 || (nlines && E[nlines - 1] > (long long)buf.len)) {
        PyErr_SetString(PyExc_ValueError, "ends must be int64 offsets within buf");
    } else if (nmin < 1 || nmax > 16 || nmin > nmax || max_bytes < 1 || mask > 0xFFFFFFFFul ||
               w.len / (w64 ? 8 : 4) < (Py_ssize_t)mask + 1) {
        PyErr_SetString(PyExc_ValueError, "bad feature settings or weights");
    } else if (out.len < nlines * (48 + (yes.len > no.len ? yes.len : no.len))) {
        res = Py_BuildValue("(ln)", -2L, nlines * (48 + (yes.len > no.len ? yes.len : no.len)));  /* room needed */
    } else {
        const unsigned char *b = buf.buf;
        unsigned char *o_ = out.buf, *fr = PyMem_Malloc((size_t)max_bytes + 2);
        uint32_t *toks = PyMem_Malloc(sizeof(uint32_t) * ((size_t)max_bytes / 2 + 2));
        long o = 0, rows = 0, start = 0, bad = 0;
        c.nmin = nmin; c.nmax = nmax; c.tokens = tokens; c.lower = lower; c.max_bytes = max_bytes;
        c.mask = (uint32_t)mask; c.w = w.buf; c.w64 = w64;
        if (!fr || !toks) {
            PyMem_Free(fr);
            PyMem_Free(toks);
            PyErr_NoMemory();
            goto done;
        }
        Py_BEGIN_ALLOW_THREADS
        for (i = 0; i < nlines; i++) {
            long end = (long)E[i], e, j;
            unsigned hi = 0, lo = 255;
            if (end - start + (end < (long)buf.len ? 1 : 0) > max_line) { bad = 1; break; }
            {   /* one pass: the bytes checked (NUL, non-ASCII) and copied, lowered, for the hash */
                long cut = start + (end - start < max_bytes ? end - start : max_bytes);
                unsigned char h8 = 0, l8 = 255, *restrict f1 = fr + 1;
                if (lower)  /* A-Z lowered by arithmetic, not a table: a loop the compiler vectorises */
                    for (j = start; j < cut; j++) { unsigned char v = b[j]; h8 |= v; l8 = v < l8 ? v : l8; f1[j - start] = (unsigned char)(v - 65u < 26u ? v + 32 : v); }
                else
                    for (j = start; j < cut; j++) { unsigned char v = b[j]; h8 |= v; l8 = v < l8 ? v : l8; f1[j - start] = v; }
                for (; j < end; j++) { unsigned char v = b[j]; h8 |= v; l8 = v < l8 ? v : l8; }
                hi = h8; lo = l8;
            }
            if (end > start && (lo == 0 || (hi >= 128 && !utf8(b, start, end)))) { bad = 1; break; }
            e = end;
            while (e > start && b[e - 1] == 13) e--;
            if (!blank(b, start, e)) {
                long k = 0, L = e - start < max_bytes ? e - start : max_bytes;
                double total, p;
                fr[0] = 2;
                fr[L + 1] = 3;
                total = sum_any(&c, fr, L, toks, &k);
                p = prob(total, k, b0);
                o = put(o_, o, "{\"id\": \"", 8);
                o = put_int(o_, o, first + i);
                o = put(o_, o, "\", \"score\": ", 12);
                o = put_score(o_, o, p);
                o = p >= thr ? put(o_, o, yes.buf, yes.len) : put(o_, o, no.buf, no.len);
                rows++;
            }
            start = end + 1;
        }
        Py_END_ALLOW_THREADS
        PyMem_Free(fr);
        PyMem_Free(toks);
        res = bad ? Py_BuildValue("(ll)", -1L, 0L) : Py_BuildValue("(ll)", o, rows);
    }
done:
    PyMem_Free(own);
    PyBuffer_Release(&buf); PyBuffer_Release(&ends); PyBuffer_Release(&w);
    PyBuffer_Release(&yes); PyBuffer_Release(&no); PyBuffer_Release(&out);
    return res;
}

/* the pieces on their own, for the tests that hold them to Python's own rules */
static PyObject *score_repr(PyObject *self, PyObject *args) {
    double p;
    unsigned char out[32];
    (void)self;
    if (!PyArg_ParseTuple(args, "d", &p)) return NULL;
    return PyBytes_FromStringAndSize((const char *)out, put_score(out, 0, p));
}

static PyObject *check_line(PyObject *self, PyObject *args) {
    Py_buffer b;
    PyObject *r;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*", &b)) return NULL;
    r = Py_BuildValue("(OO)", utf8(b.buf, 0, (long)b.len) ? Py_True : Py_False,
                      utf8(b.buf, 0, (long)b.len) && blank(b.buf, 0, (long)b.len) ? Py_True : Py_False);
    PyBuffer_Release(&b);
    return r;
}

static PyMethodDef methods[] = {
    {"jsonl_rows", jsonl_rows, METH_VARARGS, "Score a block of plain lines and write their JSONL rows (see the module)."},
    {"score_repr", score_repr, METH_VARARGS, "round(p, 6) as json.dumps writes it, as the kernel writes it."},
    {"check_line", check_line, METH_VARARGS, "(valid UTF-8, blank as str.strip() sees it) for a line's bytes."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cbulk", "smallworld's bulk scoring kernel (C).", -1, methods};

PyMODINIT_FUNC PyInit__cbulk(void) {
    int i;
    for (i = 0; i < 256; i++) {
        WORD[i] = (unsigned char)is_word((unsigned)i);
    }
    return PyModule_Create(&module);
}
