/* Compiled lease scanner: the fast path of dhcpfoctl.leases.reader, in one pass over the bytes.
 *
 * It recognises exactly the layout the reader's canonical regexes define (dhcpd 4.4's
 * write_lease(): fields in its order, each optional, one statement per line) and nothing else:
 * every record it does not fully understand is handed back to the Python reader (the
 * "barrier"), which parses it with the full parser, so models, warnings and errors are the
 * Python reader's. Nothing here trusts the file: every read is bounded by the record's end,
 * numbers are bounded before they are accumulated, and no fixed-size buffer is filled from
 * the input (column buffers are sized from the record count and checked for overflow).
 *
 * Scanner(block_of, share_index, share_count, states, hw_types, packed_starts, never,
 *         earliest, latest)
 *   .split(buf, lo, hi) -> (bounds, marks)
 *       The record split of the reader's _LEASE_RECORD regex over buf[lo:hi]: bounds is the
 *       int64 array [gap 0 start, record 0 start, gap 1 start, ..., gap n start] (record i
 *       ends where gap i + 1 starts, gap n at hi); marks lists the gaps that hold anything
 *       but whitespace.
 *   .forward(buf, bounds, first, stop) -> (columns | None, barrier, superseded)
 *       Records first .. barrier - 1 parsed in file order; barrier == stop, or the index of
 *       the first record that is not canonical. Only each address's last record is returned
 *       (superseded: how many earlier ones were dropped).
 *   .backward(buf, bounds, first, stop[, journal]) -> (columns | None, barrier, superseded
 *                                                     [, journal columns | None, superseded])
 *       Records from stop - 1 down: those of another process's share are skipped, those whose
 *       address already has a row (or a later record in this call) are counted as superseded,
 *       the others parsed; stops at the first one that is not canonical (barrier, else
 *       first - 1). Columns are returned in file order. With journal (True, or a Judge), every
 *       record is parsed and goes to journal columns (last first) or to the Judge, and the
 *       barrier may be a superseded record (then counted, and said so).
 *   columns = (addresses u32, (six int64 time columns), (three state columns), flags,
 *              hardware types, hardware lengths, hardware u64, [packed bodies]) as bytes.
 *   .journal(buf, bounds, first, stop) -> (journal columns | None, barrier)
 *       Every record from first on in file order, superseded ones included (a journal's
 *       transitions), up to the first one that is not canonical (barrier, else stop);
 *       journal columns = (addresses u32, states u8, rewind states u8, starts i64, ends i64,
 *       cltt i64, client fingerprints u32) as bytes: only what new-binding counting needs,
 *       the fingerprint as transitions.fingerprint(hardware, None) computes it.
 *
 * Judge(after, active)
 *   .feed(addresses, active, local, starts, clients), .result()
 *       The new bindings a rate over a window starting at after can count, worked out from
 *       records fed last first, as a backward read meets them (see the Judge's section).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef unsigned char uc;

#define N_TIMES 6
#define MAX_KEYWORDS 32
#define MAX_KEYWORD_LEN 32
#define HW_MAX 8

typedef struct {
    uc text[MAX_KEYWORD_LEN];
    Py_ssize_t len;
    int value;
} keyword_t;

typedef struct {
    uint32_t key;      /* address >> 8, plus one (0: empty slot) */
    PyObject *array;   /* the table's block (array('i') of 256 rows), or NULL: not ours */
    Py_buffer view;
} block_entry;

typedef struct {
    PyObject_HEAD
    PyObject *block_of;
    long share_index, share_count;
    keyword_t states[MAX_KEYWORDS];
    int n_states;
    keyword_t hw_types[MAX_KEYWORDS];
    int n_hw_types;
    keyword_t packed[MAX_KEYWORDS]; /* line start ("  uid ") -> one byte */
    int n_packed;
    uint8_t unpackable[256];        /* bytes that keep a body raw: NUL and the packed bytes */
    int64_t never, earliest, latest;
    block_entry *blocks;
    size_t blocks_cap, blocks_used;
} Scanner;

/* ---- small parsing helpers, every one bounded by e ------------------------------------- */

static inline int is_digit(uc c) { return c >= '0' && c <= '9'; }
static inline int is_hex(uc c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static inline int is_lower_hex(uc c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }
static inline int hex_value(uc c) {
    return is_digit(c) ? c - '0' : (c >= 'a' ? c - 'a' + 10 : c - 'A' + 10);
}
static inline int is_space(uc c) {  /* bytes.isspace() */
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* p starts with the literal s (of length n), within e. */
static inline int starts(const uc *p, const uc *e, const char *s, Py_ssize_t n) {
    return e - p >= n && memcmp(p, s, (size_t)n) == 0;
}
#define STARTS(p, e, lit) starts((p), (e), (lit), (Py_ssize_t)sizeof(lit) - 1)

static int lookup(const keyword_t *table, int n, const uc *p, Py_ssize_t len) {
    for (int i = 0; i < n; i++) {
        if (table[i].len == len && memcmp(table[i].text, p, (size_t)len) == 0) {
            return table[i].value;
        }
    }
    return -1;
}

/* A run of 1-3 digits at p; its value, or -1 (no digit, or a fourth digit). */
static int octet_run(const uc **pp, const uc *e, Py_ssize_t *len) {
    const uc *p = *pp;
    int value = 0;
    Py_ssize_t n = 0;
    while (p < e && is_digit(*p)) {
        if (++n > 3) return -1;
        value = value * 10 + (*p - '0');
        p++;
    }
    if (n == 0) return -1;
    *pp = p;
    *len = n;
    return value;
}

/* "lease A.B.C.D {\n" as _LEASE_RECORD admits it: the three prefix octets of 1-3 digits, the
 * last as (25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9]). Returns the position after the header or NULL;
 * *address is -1 when a prefix octet exceeds 255 (a record the full parser must judge). */
static const uc *parse_header(const uc *p, const uc *e, int64_t *address) {
    Py_ssize_t len;
    int64_t value = 0;
    int valid = 1;
    if (!STARTS(p, e, "lease ")) return NULL;
    p += 6;
    for (int i = 0; i < 3; i++) {
        int octet = octet_run(&p, e, &len);
        if (octet < 0 || p >= e || *p != '.') return NULL;
        if (octet > 255) valid = 0;
        value = value << 8 | (octet & 0xFF);
        p++;
    }
    const uc *digits = p;
    int last = octet_run(&p, e, &len);
    if (last < 0) return NULL;
    if (len == 3 && !(digits[0] == '1' || (digits[0] == '2' && digits[1] <= '4') ||
                      (digits[0] == '2' && digits[1] == '5' && digits[2] <= '5'))) {
        return NULL;
    }
    if (!STARTS(p, e, " {\n")) return NULL;
    *address = valid ? (value << 8 | last) : -1;
    return p + 3;
}

/* ---- the record split ------------------------------------------------------------------ */

/* The end of a _LEASE_RECORD match at p (within [p, hi)), or -1. The body ends at the first
 * '}' that follows a newline; it must be followed by a newline. *decided caches that '}' (and
 * the body start it was searched from), so a run of failed starts stays linear. */
static Py_ssize_t match_record(const uc *buf, Py_ssize_t p, Py_ssize_t hi, Py_ssize_t *from,
                               Py_ssize_t *decided) {
    int64_t address;
    const uc *body = parse_header(buf + p, buf + hi, &address);
    if (body == NULL) return -1;
    Py_ssize_t b = body - buf;
    Py_ssize_t close;
    if (*decided >= 0 && *from <= b && b <= *decided) {
        close = *decided;
    } else {
        Py_ssize_t q = b;
        close = -1;
        while (q < hi) {
            const uc *brace = memchr(buf + q, '}', (size_t)(hi - q));
            if (brace == NULL) break;
            Py_ssize_t r = brace - buf;
            if (buf[r - 1] == '\n') {  /* r > b - 1 >= 0 and buf[b - 1] == '\n' */
                close = r;
                break;
            }
            q = r + 1;
        }
        if (close < 0) {
            *from = b;
            *decided = hi;  /* no closing line before hi: no start from here on matches */
            return -1;
        }
        *from = b;
        *decided = close;
    }
    if (close >= hi || close + 1 >= hi || buf[close + 1] != '\n') return -1;
    return close + 2;
}

typedef struct {
    char *data;
    size_t len, cap;
} growbuf;

static int grow_append(growbuf *g, const void *item, size_t size) {
    if (g->cap - g->len < size) {
        size_t cap = g->cap ? g->cap : 256;
        while (cap - g->len < size) {
            if (cap > ((size_t)PY_SSIZE_T_MAX) / 2) {
                PyErr_NoMemory();
                return -1;
            }
            cap *= 2;
        }
        char *data = PyMem_Realloc(g->data, cap);
        if (data == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        g->data = data;
        g->cap = cap;
    }
    memcpy(g->data + g->len, item, size);
    g->len += size;
    return 0;
}

static int gap_is_blank(const uc *p, const uc *e) {
    for (; p < e; p++) {
        if (!is_space(*p)) return 0;
    }
    return 1;
}

static PyObject *Scanner_split(Scanner *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t lo, hi;
    if (!PyArg_ParseTuple(args, "y*nn", &view, &lo, &hi)) return NULL;
    PyObject *result = NULL, *marks = NULL;
    growbuf bounds = {0};
    if (lo < 0 || hi < lo || hi > view.len) {
        PyErr_SetString(PyExc_ValueError, "split: bounds outside the buffer");
        goto done;
    }
    const uc *buf = view.buf;
    marks = PyList_New(0);
    if (marks == NULL) goto done;
    Py_ssize_t pos = lo, gap_start = lo, gap_index = 0;
    Py_ssize_t from = -1, decided = -1;
    int64_t value = lo;
    if (grow_append(&bounds, &value, sizeof value) < 0) goto done;
    while (pos < hi) {
        const uc *found = memmem(buf + pos, (size_t)(hi - pos), "lease ", 6);
        if (found == NULL) break;
        Py_ssize_t start = found - buf;
        Py_ssize_t end = match_record(buf, start, hi, &from, &decided);
        if (end < 0) {
            if (decided == hi && from <= start) break;  /* no record can close any more */
            pos = start + 1;
            continue;
        }
        if (!gap_is_blank(buf + gap_start, buf + start)) {
            PyObject *index = PyLong_FromSsize_t(gap_index);
            if (index == NULL || PyList_Append(marks, index) < 0) {
                Py_XDECREF(index);
                goto done;
            }
            Py_DECREF(index);
        }
        int64_t pair[2] = {start, end};
        if (grow_append(&bounds, pair, sizeof pair) < 0) goto done;
        gap_start = pos = end;
        gap_index++;
    }
    if (!gap_is_blank(buf + gap_start, buf + hi)) {
        PyObject *index = PyLong_FromSsize_t(gap_index);
        if (index == NULL || PyList_Append(marks, index) < 0) {
            Py_XDECREF(index);
            goto done;
        }
        Py_DECREF(index);
    }
    PyObject *packed = PyBytes_FromStringAndSize(bounds.data, (Py_ssize_t)bounds.len);
    if (packed == NULL) goto done;
    result = Py_BuildValue("(NO)", packed, marks);
done:
    Py_XDECREF(marks);
    PyMem_Free(bounds.data);
    PyBuffer_Release(&view);
    return result;
}

/* ---- one canonical record -------------------------------------------------------------- */

typedef struct {
    int64_t times[N_TIMES];
    uint8_t states[3];
    uint8_t flags, hw_type, hw_len;
    uint64_t hw;
    const uc *body, *body_end;
} row_t;

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits_at(const uc *p, int n, int *value) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(p[i])) return 0;
        v = v * 10 + (p[i] - '0');
    }
    *value = v;
    return 1;
}

/* A date line's value after "  starts " etc.: "W YYYY/MM/DD HH:MM:SS", "never" or "epoch N",
 * then ';' and an optional " #comment", then '\n'. Only the forms whose meaning is beyond
 * doubt are taken (four-digit years from 100, a real calendar day); anything else, valid or
 * not, is left to the full parser. Returns the position after the line or NULL. */
static const uc *parse_date_line(const Scanner *s, const uc *p, const uc *e, int64_t *out) {
    if (e - p >= 22 && p[21] == ';' && is_digit(p[0]) && p[1] == ' ' && p[6] == '/' &&
        p[9] == '/' && p[12] == ' ' && p[15] == ':' && p[18] == ':') {
        int year, month, day, hour, minute, second;
        if (!digits_at(p + 2, 4, &year) || !digits_at(p + 7, 2, &month) ||
            !digits_at(p + 10, 2, &day) || !digits_at(p + 13, 2, &hour) ||
            !digits_at(p + 16, 2, &minute) || !digits_at(p + 19, 2, &second)) {
            return NULL;
        }
        if (year < 100 || month < 1 || month > 12 || hour > 23 || minute > 59 || second > 60) {
            return NULL;
        }
        static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        int days = month_days[month - 1] + (month == 2 && leap);
        if (day < 1 || day > days) return NULL;
        if (year >= 2038) {  /* dhcpd reads these as never (its time_t in the file) */
            *out = s->never;
        } else {
            int64_t epoch = days_from_civil(year, month, day) * 86400 + hour * 3600 +
                            minute * 60 + second;
            if (epoch < s->earliest || epoch > s->latest) return NULL;
            *out = epoch;
        }
        p += 21;
    } else if (STARTS(p, e, "never;")) {
        *out = s->never;
        p += 5;
    } else if (STARTS(p, e, "epoch ")) {
        p += 6;
        while (p < e && *p == '0' && p + 1 < e && is_digit(p[1])) p++;  /* leading zeros */
        int64_t value = 0;
        int n = 0;
        while (p < e && is_digit(*p)) {
            if (++n > 12) return NULL;  /* LATEST_TIME has 12 digits */
            value = value * 10 + (*p - '0');
            p++;
        }
        if (n == 0 || value < s->earliest || value > s->latest) return NULL;
        *out = value;
    } else {
        return NULL;
    }
    if (p >= e || *p != ';') return NULL;
    p++;
    if (STARTS(p, e, " #")) {
        const uc *nl = memchr(p, '\n', (size_t)(e - p));
        if (nl == NULL) return NULL;
        p = nl;
    }
    if (p >= e || *p != '\n') return NULL;
    return p + 1;
}

/* [a-z-]+ then ";\n": a keyword of the table. */
static const uc *parse_keyword_line(const keyword_t *table, int n, const uc *p, const uc *e,
                                    int *value) {
    const uc *w = p;
    while (p < e && ((*p >= 'a' && *p <= 'z') || *p == '-')) p++;
    if (p == w || !STARTS(p, e, ";\n")) return NULL;
    *value = lookup(table, n, w, p - w);
    if (*value < 0) return NULL;
    return p + 2;
}

/* A quoted string as _STRING admits it: no raw newline, an escape takes any byte but one. */
static const uc *parse_string(const uc *p, const uc *e) {
    if (p >= e || *p != '"') return NULL;
    p++;
    while (p < e) {
        uc c = *p;
        if (c == '"') return p + 1;
        if (c == '\n') return NULL;
        if (c == '\\') {
            if (p + 1 >= e || p[1] == '\n') return NULL;
            p += 2;
        } else {
            p++;
        }
    }
    return NULL;
}

/* _HEXSEQ: 1-2 hex digits, then (':' 1-2 hex digits)*, followed by ';'. */
static const uc *parse_hexseq(const uc *p, const uc *e) {
    for (;;) {
        int n = 0;
        while (p < e && is_hex(*p) && n < 2) {
            p++;
            n++;
        }
        if (n == 0) return NULL;
        if (p < e && *p == ':') {
            p++;
            continue;
        }
        return p < e && *p == ';' ? p : NULL;
    }
}

static const uc *parse_name(const uc *p, const uc *e) {  /* [A-Za-z0-9_-]+ */
    const uc *w = p;
    while (p < e && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || is_digit(*p) ||
                     *p == '_' || *p == '-')) {
        p++;
    }
    return p == w ? NULL : p;
}

/* One _EXTRA_LINE (uid, client-hostname, set, option agent.*); the position after it. */
static const uc *parse_extra_line(const uc *p, const uc *e) {
    if (STARTS(p, e, "  uid ")) {
        p += 6;
        p = (p < e && *p == '"') ? parse_string(p, e) : parse_hexseq(p, e);
    } else if (STARTS(p, e, "  client-hostname ")) {
        p = parse_string(p + 18, e);
    } else if (STARTS(p, e, "  set ")) {
        p = parse_name(p + 6, e);
        if (p == NULL || !STARTS(p, e, " = ")) return NULL;
        p += 3;
        if (p < e && *p == '"') {
            p = parse_string(p, e);
        } else if (p < e && *p == '%') {
            p++;
            int n = 0;
            while (p < e && is_digit(*p)) {
                if (++n > 19) return NULL;
                p++;
            }
            if (n == 0) return NULL;
        } else if (STARTS(p, e, "true")) {
            p += 4;
        } else if (STARTS(p, e, "false")) {
            p += 5;
        } else {
            return NULL;
        }
    } else if (STARTS(p, e, "  option agent.")) {
        p = parse_name(p + 15, e);
        if (p == NULL || !STARTS(p, e, " ")) return NULL;
        p++;
        p = (p < e && *p == '"') ? parse_string(p, e) : parse_hexseq(p, e);
    } else {
        return NULL;
    }
    if (p == NULL || !STARTS(p, e, ";\n")) return NULL;
    return p + 2;
}

static const char *const TIME_LINES[N_TIMES] = {"  starts ", "  ends ",  "  tstp ",
                                                "  tsfp ",   "  atsfp ", "  cltt "};
static const char *const STATE_LINES[3] = {"  binding state ", "  next binding state ",
                                           "  rewind binding state "};

/* The record [p, e) (e just past its closing "}\n") in the canonical layout: 1 and the row,
 * or 0 when the full parser must read it (also for a lease that ends before it starts, of
 * which the full parser warns). */
static int parse_record(const Scanner *s, const uc *p, const uc *e, row_t *row) {
    int64_t address;
    p = parse_header(p, e, &address);
    if (p == NULL || address < 0) return 0;
    memset(row, 0, sizeof *row);
    for (int i = 0; i < N_TIMES; i++) {
        Py_ssize_t n = (Py_ssize_t)strlen(TIME_LINES[i]);
        if (starts(p, e, TIME_LINES[i], n)) {
            p = parse_date_line(s, p + n, e, &row->times[i]);
            if (p == NULL) return 0;
        }
    }
    for (int i = 0; i < 3; i++) {
        Py_ssize_t n = (Py_ssize_t)strlen(STATE_LINES[i]);
        if (starts(p, e, STATE_LINES[i], n)) {
            int value;
            p = parse_keyword_line(s->states, s->n_states, p + n, e, &value);
            if (p == NULL) return 0;
            row->states[i] = (uint8_t)value;
        }
    }
    if (STARTS(p, e, "  reserved;\n")) {
        row->flags |= 1;
        p += 12;
    }
    if (STARTS(p, e, "  dynamic-bootp;\n")) {
        row->flags |= 2;
        p += 17;
    }
    if (STARTS(p, e, "  hardware ")) {
        p += 11;
        const uc *w = p;
        while (p < e && ((*p >= 'a' && *p <= 'z') || *p == '-')) p++;
        if (p == w || p >= e || *p != ' ') return 0;  /* a digit: unknown-N, the full parser's */
        int type = lookup(s->hw_types, s->n_hw_types, w, p - w);
        if (type < 0) return 0;
        p++;
        uint64_t hw = 0;
        int n = 0;
        for (;;) {
            if (e - p < 2 || !is_lower_hex(p[0]) || !is_lower_hex(p[1]) || n == HW_MAX) return 0;
            hw = hw << 8 | (uint64_t)(hex_value(p[0]) << 4 | hex_value(p[1]));
            n++;
            p += 2;
            if (p < e && *p == ':') {
                p++;
                continue;
            }
            break;
        }
        if (!STARTS(p, e, ";\n")) return 0;
        p += 2;
        row->hw_type = (uint8_t)type;
        row->hw_len = (uint8_t)n;
        row->hw = hw;
    }
    row->body = p;
    while (p < e && *p != '}') {
        p = parse_extra_line(p, e);
        if (p == NULL) return 0;
    }
    row->body_end = p;
    if (e - p != 2 || p[0] != '}' || p[1] != '\n') return 0;
    if (row->times[0] && row->times[1] && row->times[1] < row->times[0]) return 0;
    return 1;
}

/* The body text as the reader stores it (syntax.pack_lease_bodies' form: each statement
 * start a single byte, then the last ";\n"), or raw when it holds such a byte already. */
static PyObject *packed_body(const Scanner *s, const uc *p, const uc *e) {
    if (p == e) return PyBytes_FromStringAndSize("", 0);
    for (const uc *q = p; q < e; q++) {
        if (s->unpackable[*q]) return PyBytes_FromStringAndSize((const char *)p, e - p);
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, e - p);  /* packing only shortens */
    if (out == NULL) return NULL;
    uc *w = (uc *)PyBytes_AS_STRING(out);
    const uc *line = p;
    while (line < e) {
        const uc *nl = memchr(line, '\n', (size_t)(e - line));  /* every body line ends so */
        int i = 0;
        if (nl != NULL) {
            for (; i < s->n_packed; i++) {
                if (starts(line, nl, (const char *)s->packed[i].text, s->packed[i].len)) break;
            }
        }
        if (nl == NULL || i == s->n_packed || nl - line < s->packed[i].len + 1 ||
            nl[-1] != ';') {  /* not a line parse_extra_line took */
            Py_DECREF(out);
            return PyBytes_FromStringAndSize((const char *)p, e - p);
        }
        const uc *rest = line + s->packed[i].len, *stop = nl - 1;  /* before ";" */
        uc *out_start = (uc *)PyBytes_AS_STRING(out);
        if ((w - out_start) + 1 + (stop - rest) + 2 > e - p) {  /* cannot happen: lines shrink */
            Py_DECREF(out);
            return PyBytes_FromStringAndSize((const char *)p, e - p);
        }
        *w++ = (uc)s->packed[i].value;
        memcpy(w, rest, (size_t)(stop - rest));
        w += stop - rest;
        line = nl + 1;
    }
    *w++ = ';';
    *w++ = '\n';
    Py_ssize_t used = (Py_ssize_t)(w - (uc *)PyBytes_AS_STRING(out));
    if (used == e - p) return out;
    PyObject *exact = PyBytes_FromStringAndSize(PyBytes_AS_STRING(out), used);
    Py_DECREF(out);
    return exact;
}

/* ---- column output --------------------------------------------------------------------- */

typedef struct {
    Py_ssize_t count, cap;
    uint32_t *addresses;
    int64_t *times[N_TIMES];
    uint8_t *states[3];
    uint8_t *flags, *hw_types, *hw_lens;
    uint64_t *hws;
    PyObject *extras;
} columns_t;

static void columns_free(columns_t *c) {
    PyMem_Free(c->addresses);
    for (int i = 0; i < N_TIMES; i++) PyMem_Free(c->times[i]);
    for (int i = 0; i < 3; i++) PyMem_Free(c->states[i]);
    PyMem_Free(c->flags);
    PyMem_Free(c->hw_types);
    PyMem_Free(c->hw_lens);
    PyMem_Free(c->hws);
    Py_XDECREF(c->extras);
}

static int columns_init(columns_t *c, Py_ssize_t cap) {
    memset(c, 0, sizeof *c);
    if (cap < 1) cap = 1;
    if ((size_t)cap > ((size_t)PY_SSIZE_T_MAX) / sizeof(int64_t)) {
        PyErr_NoMemory();
        return -1;
    }
    c->cap = cap;
    c->addresses = PyMem_Malloc((size_t)cap * sizeof(uint32_t));
    int ok = c->addresses != NULL;
    for (int i = 0; i < N_TIMES; i++) ok &= (c->times[i] = PyMem_Malloc((size_t)cap * 8)) != NULL;
    for (int i = 0; i < 3; i++) ok &= (c->states[i] = PyMem_Malloc((size_t)cap)) != NULL;
    ok &= (c->flags = PyMem_Malloc((size_t)cap)) != NULL;
    ok &= (c->hw_types = PyMem_Malloc((size_t)cap)) != NULL;
    ok &= (c->hw_lens = PyMem_Malloc((size_t)cap)) != NULL;
    ok &= (c->hws = PyMem_Malloc((size_t)cap * 8)) != NULL;
    c->extras = PyList_New(0);
    if (!ok || c->extras == NULL) {
        columns_free(c);
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int columns_add(const Scanner *s, columns_t *c, uint32_t address, const row_t *row) {
    Py_ssize_t i = c->count;
    if (i >= c->cap) {
        PyErr_SetString(PyExc_RuntimeError, "scanner: more rows than records");
        return -1;
    }
    PyObject *body = packed_body(s, row->body, row->body_end);
    if (body == NULL) return -1;
    int failed = PyList_Append(c->extras, body);
    Py_DECREF(body);
    if (failed) return -1;
    c->addresses[i] = address;
    for (int t = 0; t < N_TIMES; t++) c->times[t][i] = row->times[t];
    for (int t = 0; t < 3; t++) c->states[t][i] = row->states[t];
    c->flags[i] = row->flags;
    c->hw_types[i] = row->hw_type;
    c->hw_lens[i] = row->hw_len;
    c->hws[i] = row->hw;
    c->count++;
    return 0;
}

#define SWAP(type, a, b) do { type tmp_ = (a); (a) = (b); (b) = tmp_; } while (0)

static void columns_reverse(columns_t *c) {
    for (Py_ssize_t i = 0, j = c->count - 1; i < j; i++, j--) {
        SWAP(uint32_t, c->addresses[i], c->addresses[j]);
        for (int t = 0; t < N_TIMES; t++) SWAP(int64_t, c->times[t][i], c->times[t][j]);
        for (int t = 0; t < 3; t++) SWAP(uint8_t, c->states[t][i], c->states[t][j]);
        SWAP(uint8_t, c->flags[i], c->flags[j]);
        SWAP(uint8_t, c->hw_types[i], c->hw_types[j]);
        SWAP(uint8_t, c->hw_lens[i], c->hw_lens[j]);
        SWAP(uint64_t, c->hws[i], c->hws[j]);
    }
}

static PyObject *bytes_of(const void *data, Py_ssize_t count, Py_ssize_t size) {
    return PyBytes_FromStringAndSize(data, count * size);
}

/* The columns as a tuple of bytes (None when empty); frees c. */
static PyObject *columns_result(columns_t *c) {
    PyObject *result = NULL;
    if (c->count == 0) {
        columns_free(c);
        Py_RETURN_NONE;
    }
    Py_ssize_t n = c->count;
    PyObject *times = PyTuple_New(N_TIMES), *states = PyTuple_New(3);
    if (times == NULL || states == NULL) goto done;
    for (int t = 0; t < N_TIMES; t++) {
        PyObject *column = bytes_of(c->times[t], n, 8);
        if (column == NULL) goto done;
        PyTuple_SET_ITEM(times, t, column);
    }
    for (int t = 0; t < 3; t++) {
        PyObject *column = bytes_of(c->states[t], n, 1);
        if (column == NULL) goto done;
        PyTuple_SET_ITEM(states, t, column);
    }
    result = Py_BuildValue("(NOONNNNO)", bytes_of(c->addresses, n, 4), times, states,
                           bytes_of(c->flags, n, 1), bytes_of(c->hw_types, n, 1),
                           bytes_of(c->hw_lens, n, 1), bytes_of(c->hws, n, 8), c->extras);
done:
    Py_XDECREF(times);
    Py_XDECREF(states);
    columns_free(c);
    return result;
}

/* ---- bounds of one record -------------------------------------------------------------- */

typedef struct {
    Py_buffer buf, bounds;
    Py_ssize_t records;
} scan_args;

static int scan_args_get(PyObject *args, scan_args *a, Py_ssize_t *first, Py_ssize_t *stop) {
    if (!PyArg_ParseTuple(args, "y*y*nn", &a->buf, &a->bounds, first, stop)) return -1;
    if (a->bounds.len % 8 != 0 || a->bounds.len < 8) {
        PyErr_SetString(PyExc_ValueError, "scanner: bounds are not an int64 array");
        goto fail;
    }
    a->records = (a->bounds.len / 8 - 1) / 2;
    if (*first < 0 || *stop < *first || *stop > a->records) {
        PyErr_SetString(PyExc_IndexError, "scanner: record range outside the split");
        goto fail;
    }
    return 0;
fail:
    PyBuffer_Release(&a->buf);
    PyBuffer_Release(&a->bounds);
    return -1;
}

static void scan_args_release(scan_args *a) {
    PyBuffer_Release(&a->buf);
    PyBuffer_Release(&a->bounds);
}

/* Record i's bytes, checked against the buffer (the bounds come from Python). */
static int record_span(const scan_args *a, Py_ssize_t i, const uc **p, const uc **e) {
    int64_t start, end;
    memcpy(&start, (const char *)a->bounds.buf + (2 * i + 1) * 8, 8);
    memcpy(&end, (const char *)a->bounds.buf + (2 * i + 2) * 8, 8);
    if (start < 0 || end < start || end > a->buf.len) {
        PyErr_SetString(PyExc_ValueError, "scanner: a record bound outside the buffer");
        return -1;
    }
    *p = (const uc *)a->buf.buf + start;
    *e = (const uc *)a->buf.buf + end;
    return 0;
}

/* ---- the table's blocks: which addresses already have a row ---------------------------- */

static block_entry *block_slot(Scanner *self, uint32_t key) {
    size_t mask = self->blocks_cap - 1;
    size_t h = ((size_t)key * 2654435761u) & mask;
    while (self->blocks[h].key != 0 && self->blocks[h].key != key + 1) h = (h + 1) & mask;
    return &self->blocks[h];
}

static int blocks_grow(Scanner *self) {
    size_t cap = self->blocks_cap ? self->blocks_cap * 2 : 1024;
    block_entry *old = self->blocks;
    size_t old_cap = self->blocks_cap;
    if (cap > ((size_t)PY_SSIZE_T_MAX) / sizeof(block_entry)) {
        PyErr_NoMemory();
        return -1;
    }
    self->blocks = PyMem_Calloc(cap, sizeof(block_entry));
    if (self->blocks == NULL) {
        self->blocks = old;
        PyErr_NoMemory();
        return -1;
    }
    self->blocks_cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key != 0) *block_slot(self, old[i].key - 1) = old[i];
    }
    PyMem_Free(old);
    return 0;
}

/* The row numbers of /24 block key (NULL with *mine = 0 for another process's share). */
static const int32_t *block_rows(Scanner *self, uint32_t key, int *mine) {
    *mine = 1;
    if (self->share_count > 1 && (long)(key % (uint32_t)self->share_count) != self->share_index) {
        *mine = 0;
        return NULL;
    }
    if ((self->blocks_used + 1) * 2 > self->blocks_cap && blocks_grow(self) < 0) return NULL;
    block_entry *slot = block_slot(self, key);
    if (slot->key == 0) {
        PyObject *array = PyObject_CallFunction(self->block_of, "k", (unsigned long)key);
        if (array == NULL) return NULL;
        if (PyObject_GetBuffer(array, &slot->view, PyBUF_FORMAT | PyBUF_ND) < 0) {
            Py_DECREF(array);
            return NULL;
        }
        if (slot->view.len != 256 * 4 || slot->view.itemsize != 4 || slot->view.format == NULL ||
            strcmp(slot->view.format, "i") != 0) {
            PyBuffer_Release(&slot->view);
            Py_DECREF(array);
            PyErr_SetString(PyExc_TypeError, "scanner: a block is not an array('i') of 256");
            return NULL;
        }
        slot->array = array;
        slot->key = key + 1;
        self->blocks_used++;
    }
    return slot->view.buf;
}

/* Addresses taken in one backward call (the table gets them afterwards). */
typedef struct {
    uint64_t *slots;  /* address + 1; 0: empty */
    size_t mask;
} address_set;

static int address_set_init(address_set *set, Py_ssize_t count) {
    size_t cap = 16;
    while (cap < (size_t)count * 2) {
        if (cap > ((size_t)PY_SSIZE_T_MAX) / 16) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    set->slots = PyMem_Calloc(cap, sizeof(uint64_t));
    if (set->slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    set->mask = cap - 1;
    return 0;
}

/* Adds address; returns 1 if it was there already. */
static int address_set_add(address_set *set, uint32_t address) {
    size_t h = ((size_t)address * 2654435761u) & set->mask;
    while (set->slots[h] != 0) {
        if (set->slots[h] == (uint64_t)address + 1) return 1;
        h = (h + 1) & set->mask;
    }
    set->slots[h] = (uint64_t)address + 1;
    return 0;
}

/* Journal semantics inside a batch: only each address's last row is kept (in file order of
 * those last rows, as LeaseTable.put_columns keeps them); returns how many were dropped. */
static Py_ssize_t columns_keep_last(columns_t *c) {
    address_set seen = {0};
    PyObject *kept = NULL;
    uint8_t *keep = PyMem_Malloc(c->count ? (size_t)c->count : 1);
    if (keep == NULL || address_set_init(&seen, c->count) < 0) goto fail;
    Py_ssize_t n = 0;
    for (Py_ssize_t i = c->count - 1; i >= 0; i--) {
        keep[i] = !address_set_add(&seen, c->addresses[i]);
        n += keep[i];
    }
    if (n == c->count) {
        PyMem_Free(keep);
        PyMem_Free(seen.slots);
        return 0;
    }
    kept = PyList_New(n);
    if (kept == NULL) goto fail;
    Py_ssize_t j = 0;
    for (Py_ssize_t i = 0; i < c->count; i++) {
        if (!keep[i]) continue;
        c->addresses[j] = c->addresses[i];
        for (int t = 0; t < N_TIMES; t++) c->times[t][j] = c->times[t][i];
        for (int t = 0; t < 3; t++) c->states[t][j] = c->states[t][i];
        c->flags[j] = c->flags[i];
        c->hw_types[j] = c->hw_types[i];
        c->hw_lens[j] = c->hw_lens[i];
        c->hws[j] = c->hws[i];
        PyObject *body = PyList_GET_ITEM(c->extras, i);
        Py_INCREF(body);
        PyList_SET_ITEM(kept, j, body);
        j++;
    }
    Py_ssize_t dropped = c->count - n;
    c->count = n;
    Py_SETREF(c->extras, kept);
    PyMem_Free(keep);
    PyMem_Free(seen.slots);
    return dropped;
fail:
    if (!PyErr_Occurred()) PyErr_NoMemory();
    PyMem_Free(keep);
    PyMem_Free(seen.slots);
    return -1;
}

static PyObject *Scanner_forward(Scanner *self, PyObject *args) {
    scan_args a;
    Py_ssize_t first, stop, i;
    if (scan_args_get(args, &a, &first, &stop) < 0) return NULL;
    columns_t c;
    if (columns_init(&c, stop - first) < 0) {
        scan_args_release(&a);
        return NULL;
    }
    for (i = first; i < stop; i++) {
        const uc *p, *e;
        row_t row;
        int64_t address;
        if (record_span(&a, i, &p, &e) < 0) goto fail;
        if (parse_header(p, e, &address) == NULL || address < 0 ||
            !parse_record(self, p, e, &row)) {
            break;
        }
        if (columns_add(self, &c, (uint32_t)address, &row) < 0) goto fail;
    }
    scan_args_release(&a);
    Py_ssize_t superseded = columns_keep_last(&c);
    if (superseded < 0) {
        columns_free(&c);
        return NULL;
    }
    return Py_BuildValue("(Nnn)", columns_result(&c), i, superseded);
fail:
    columns_free(&c);
    scan_args_release(&a);
    return NULL;
}

/* ---- journal columns: what new-binding counting needs of every record ----------------- */

typedef struct {
    Py_ssize_t count, cap;
    uint32_t *addresses, *clients;
    uint8_t *states, *rewinds;
    int64_t *starts, *ends, *cltts;
} journal_t;

static uint32_t hardware_fingerprint(uint64_t hw, int len);

static void journal_free(journal_t *j) {
    PyMem_Free(j->addresses);
    PyMem_Free(j->clients);
    PyMem_Free(j->states);
    PyMem_Free(j->rewinds);
    PyMem_Free(j->starts);
    PyMem_Free(j->ends);
    PyMem_Free(j->cltts);
    memset(j, 0, sizeof *j);
}

static int journal_init(journal_t *j, Py_ssize_t cap) {
    memset(j, 0, sizeof *j);
    if (cap < 1) cap = 1;
    if ((size_t)cap > ((size_t)PY_SSIZE_T_MAX) / sizeof(int64_t)) {
        PyErr_NoMemory();
        return -1;
    }
    j->cap = cap;
    j->addresses = PyMem_Malloc((size_t)cap * 4);
    j->clients = PyMem_Malloc((size_t)cap * 4);
    j->states = PyMem_Malloc((size_t)cap);
    j->rewinds = PyMem_Malloc((size_t)cap);
    j->starts = PyMem_Malloc((size_t)cap * 8);
    j->ends = PyMem_Malloc((size_t)cap * 8);
    j->cltts = PyMem_Malloc((size_t)cap * 8);
    if (!j->addresses || !j->clients || !j->states || !j->rewinds || !j->starts || !j->ends ||
        !j->cltts) {
        journal_free(j);
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int journal_add(journal_t *j, uint32_t address, const row_t *row) {
    Py_ssize_t n = j->count;
    if (n >= j->cap) {
        PyErr_SetString(PyExc_RuntimeError, "scanner: more rows than records");
        return -1;
    }
    j->addresses[n] = address;
    j->states[n] = row->states[0];
    j->rewinds[n] = row->states[2];
    j->starts[n] = row->times[0];
    j->ends[n] = row->times[1];
    j->cltts[n] = row->times[5];
    j->clients[n] = hardware_fingerprint(row->hw, row->hw_len);
    j->count++;
    return 0;
}

/* The journal columns as a tuple of bytes, or None when empty; frees j. */
static PyObject *journal_result(journal_t *j) {
    Py_ssize_t n = j->count;
    PyObject *result;
    if (n == 0) {
        result = Py_NewRef(Py_None);
    } else {
        result = Py_BuildValue("(NNNNNNN)", bytes_of(j->addresses, n, 4), bytes_of(j->states, n, 1),
                               bytes_of(j->rewinds, n, 1), bytes_of(j->starts, n, 8),
                               bytes_of(j->ends, n, 8), bytes_of(j->cltts, n, 8),
                               bytes_of(j->clients, n, 4));
    }
    journal_free(j);
    return result;
}

/* ---- new bindings worked out as a file is read backwards ------------------------------- */

/* Judge(after, active): the new bindings a rate over a window starting at ``after`` can
 * count, from records fed last first (the backward read's order), by the rules of
 * transitions.journal_bindings (whose Python form, filtered by transitions.window_bindings,
 * is the oracle of tests/test_scanner.py). ``active``: the number of that binding state.
 *
 * Each record's verdict needs the client holding its address before it, which only the
 * address's earlier records tell: they are read later. So each record whose verdict is
 * wanted (active, and begun after ``after``, or with no start: those count when they follow
 * the cut) waits in a chain of its address until an earlier record settles the holder (one
 * that is not active: no holder; or active with a hardware address: its client); the chain
 * is then replayed in file order. An address's oldest record seen so far stands for its
 * first (dhcpd's snapshot) until an earlier one comes. Memory: per /24 block seen, a few
 * bytes per address; per waiting record, one entry; per binding found, one. */

#define J_SEEN 1
#define J_ACTIVE 2
#define J_LOCAL 4
#define J_WANTED 8

typedef struct {
    int64_t k;       /* feed number: 0 for the last record of the file */
    int64_t starts;
    uint32_t address, client;
    uint8_t flags;
    int32_t next;    /* the next (newer) entry of the chain, or -1 */
} judge_entry;

typedef struct {
    int64_t starts[256];  /* of each address's oldest record seen */
    int64_t k[256];
    int32_t chain[256];   /* that address's waiting records, oldest first, or -1 */
    uint8_t flags[256];   /* J_SEEN | J_ACTIVE of the oldest record seen; 0: none yet */
} judge_block;

typedef struct {
    uint32_t key;  /* address >> 8, plus one (0: empty slot) */
    judge_block *block;
} judge_slot;

typedef struct {
    int64_t k, at;
    uint32_t address;
    uint8_t local;
} judge_binding;

typedef struct {
    PyObject_HEAD
    int64_t after;
    int active_state;
    int64_t fed, appended, since, cut;  /* cut: a feed number, -1 for none */
    int has_since;
    judge_slot *slots;
    size_t slots_cap, slots_used;
    judge_entry *entries;
    Py_ssize_t entries_len, entries_cap;
    int32_t free_entry;
    growbuf found, zero;  /* judge_binding each; zero: those with no start, kept if judged */
} Judge;

static judge_block *judge_block_of(Judge *j, uint32_t key) {
    if ((j->slots_used + 1) * 2 > j->slots_cap) {
        size_t cap = j->slots_cap ? j->slots_cap * 2 : 256;
        if (cap > ((size_t)PY_SSIZE_T_MAX) / sizeof(judge_slot)) {
            PyErr_NoMemory();
            return NULL;
        }
        judge_slot *slots = PyMem_Calloc(cap, sizeof(judge_slot));
        if (slots == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        for (size_t i = 0; i < j->slots_cap; i++) {
            if (j->slots[i].key == 0) continue;
            size_t h = ((size_t)j->slots[i].key * 2654435761u) & (cap - 1);
            while (slots[h].key != 0) h = (h + 1) & (cap - 1);
            slots[h] = j->slots[i];
        }
        PyMem_Free(j->slots);
        j->slots = slots;
        j->slots_cap = cap;
    }
    size_t mask = j->slots_cap - 1, h = ((size_t)(key + 1) * 2654435761u) & mask;
    while (j->slots[h].key != 0 && j->slots[h].key != key + 1) h = (h + 1) & mask;
    if (j->slots[h].key == 0) {
        judge_block *block = PyMem_Malloc(sizeof(judge_block));
        if (block == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        memset(block->flags, 0, sizeof block->flags);
        for (int i = 0; i < 256; i++) block->chain[i] = -1;
        j->slots[h].key = key + 1;
        j->slots[h].block = block;
        j->slots_used++;
    }
    return j->slots[h].block;
}

static int32_t judge_entry_new(Judge *j) {
    if (j->free_entry >= 0) {
        int32_t e = j->free_entry;
        j->free_entry = j->entries[e].next;
        return e;
    }
    if (j->entries_len == j->entries_cap) {
        Py_ssize_t cap = j->entries_cap ? j->entries_cap * 2 : 256;
        if (cap > INT32_MAX || (size_t)cap > ((size_t)PY_SSIZE_T_MAX) / sizeof(judge_entry)) {
            PyErr_NoMemory();
            return -1;
        }
        judge_entry *entries = PyMem_Realloc(j->entries, (size_t)cap * sizeof(judge_entry));
        if (entries == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        j->entries = entries;
        j->entries_cap = cap;
    }
    return (int32_t)j->entries_len++;
}

/* transitions.same_client: each known half of two fingerprints agrees. */
static int same_client(uint32_t a, uint32_t b) {
    uint32_t hw_a = a >> 16, hw_b = b >> 16, id_a = a & 0xFFFF, id_b = b & 0xFFFF;
    if (hw_a && hw_b && hw_a != hw_b) return 0;
    return !(id_a && id_b && id_a != id_b);
}

/* Replay a chain in file order from a holder (held: whether there is one); its first entry
 * is the address's first record (only primes the holder) when ``first``. Frees the chain. */
static int judge_replay(Judge *j, int32_t e, int held, uint32_t holder, int first) {
    while (e >= 0) {
        judge_entry entry = j->entries[e];
        j->entries[e].next = j->free_entry;
        j->free_entry = e;
        e = entry.next;
        if (first) {  /* Holders.observe of an active record with no holder */
            held = 1;
            holder = entry.client;
            first = 0;
            continue;
        }
        if (held && holder == entry.client) continue;  /* a renewal */
        int binding = !held || !same_client(holder, entry.client);
        if (!held || entry.client) holder = entry.client;
        held = 1;
        if (binding && (entry.flags & J_WANTED)) {
            judge_binding b = {entry.k, entry.starts, entry.address, (entry.flags & J_LOCAL) != 0};
            if (grow_append(entry.starts ? &j->found : &j->zero, &b, sizeof b) < 0) return -1;
        }
    }
    return 0;
}

/* One record, earlier in the file than every one fed before. */
static int judge_feed(Judge *j, uint32_t address, int active, int local, int64_t starts,
                      uint32_t client) {
    int64_t k = j->fed++;
    judge_block *block = judge_block_of(j, address >> 8);
    if (block == NULL) return -1;
    int i = address & 0xFF, queued = 0;
    int wanted = active && (starts > j->after || starts == 0);
    if (block->flags[i] & J_SEEN) {
        /* The oldest record seen so far has an earlier one: it is appended, not the
         * snapshot. */
        j->appended++;
        if (block->flags[i] & J_ACTIVE) {
            int64_t then = block->starts[i];
            if (then != 0 && (!j->has_since || then < j->since)) {
                j->since = then;
                j->has_since = 1;
            }
            if (then > j->after && block->k[i] > j->cut) j->cut = block->k[i];
        }
        int32_t chain = block->chain[i];
        if (chain >= 0 && (!active || client != 0)) {  /* this record settles the holder */
            block->chain[i] = -1;
            if (judge_replay(j, chain, active, client, 0) < 0) return -1;
        } else if (chain >= 0) {  /* active, no hardware address: the holder stays */
            queued = 1;
        }
    }
    if (wanted || queued) {
        int32_t e = judge_entry_new(j);
        if (e < 0) return -1;
        judge_entry entry = {k, starts, address, client,
                             (uint8_t)(J_ACTIVE | (local ? J_LOCAL : 0) | (wanted ? J_WANTED : 0)),
                             block->chain[i]};
        j->entries[e] = entry;
        block->chain[i] = e;
    }
    block->flags[i] = (uint8_t)(J_SEEN | (active ? J_ACTIVE : 0));
    block->starts[i] = starts;
    block->k[i] = k;
    return 0;
}

static int compare_found(const void *a, const void *b) {  /* file order: feed number down */
    int64_t ka = ((const judge_binding *)a)->k, kb = ((const judge_binding *)b)->k;
    return (ka < kb) - (ka > kb);
}

/* feed(addresses u32, active u8, local u8, starts i64, clients u32): records in file order,
 * all of them earlier than every record fed so far; fed last first. */
static PyObject *Judge_feed(Judge *self, PyObject *args) {
    Py_buffer col[5];
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*", &col[0], &col[1], &col[2], &col[3], &col[4])) {
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t n = col[1].len;
    if (col[0].len != 4 * n || col[2].len != n || col[3].len != 8 * n || col[4].len != 4 * n) {
        PyErr_SetString(PyExc_ValueError, "judge: columns of different lengths");
        goto done;
    }
    for (Py_ssize_t i = n - 1; i >= 0; i--) {
        uint32_t address, client;
        int64_t starts;
        memcpy(&address, (const char *)col[0].buf + 4 * i, 4);
        memcpy(&starts, (const char *)col[3].buf + 8 * i, 8);
        memcpy(&client, (const char *)col[4].buf + 4 * i, 4);
        if (judge_feed(self, address, ((const uc *)col[1].buf)[i] != 0,
                       ((const uc *)col[2].buf)[i] != 0, starts, client) < 0) {
            goto done;
        }
    }
    result = Py_NewRef(Py_None);
done:
    for (int c = 0; c < 5; c++) PyBuffer_Release(&col[c]);
    return result;
}

/* result() -> ((addresses u32, starts i64, locals u8) of the bindings in file order,
 * since | None, records, appended). Settles every waiting record: call it once, at the
 * file's start. */
static PyObject *Judge_result(Judge *self, PyObject *unused) {
    for (size_t s = 0; s < self->slots_cap; s++) {
        judge_block *block = self->slots[s].key ? self->slots[s].block : NULL;
        for (int i = 0; block != NULL && i < 256; i++) {
            int32_t chain = block->chain[i];
            block->chain[i] = -1;
            if (chain >= 0 && judge_replay(self, chain, 0, 0, 1) < 0) return NULL;
        }
    }
    /* Those with no start count only after the cut (journal_bindings judges no earlier). */
    const judge_binding *zero = (const judge_binding *)self->zero.data;
    for (size_t z = 0; z < self->zero.len / sizeof(judge_binding); z++) {
        if (zero[z].k <= self->cut && grow_append(&self->found, &zero[z], sizeof *zero) < 0) {
            return NULL;
        }
    }
    self->zero.len = 0;
    judge_binding *found = (judge_binding *)self->found.data;
    Py_ssize_t n = (Py_ssize_t)(self->found.len / sizeof(judge_binding));
    if (n > 1) qsort(found, (size_t)n, sizeof *found, compare_found);
    PyObject *addresses = PyBytes_FromStringAndSize(NULL, 4 * n);
    PyObject *ats = PyBytes_FromStringAndSize(NULL, 8 * n);
    PyObject *locals = PyBytes_FromStringAndSize(NULL, n);
    if (addresses == NULL || ats == NULL || locals == NULL) {
        Py_XDECREF(addresses);
        Py_XDECREF(ats);
        Py_XDECREF(locals);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        memcpy(PyBytes_AS_STRING(addresses) + 4 * i, &found[i].address, 4);
        memcpy(PyBytes_AS_STRING(ats) + 8 * i, &found[i].at, 8);
        PyBytes_AS_STRING(locals)[i] = (char)found[i].local;
    }
    PyObject *since = self->has_since ? PyLong_FromLongLong(self->since) : Py_NewRef(Py_None);
    if (since == NULL) {
        Py_DECREF(addresses);
        Py_DECREF(ats);
        Py_DECREF(locals);
        return NULL;
    }
    return Py_BuildValue("((NNN)NLL)", addresses, ats, locals, since, (long long)self->fed,
                         (long long)self->appended);
}

static int Judge_init(Judge *self, PyObject *args, PyObject *kwds) {
    long long after;
    int active;
    if (!PyArg_ParseTuple(args, "Li", &after, &active)) return -1;
    if (self->fed != 0 || self->slots != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "judge: already in use");
        return -1;
    }
    self->after = after;
    self->active_state = active;
    self->cut = -1;
    self->free_entry = -1;
    return 0;
}

static void Judge_dealloc(Judge *self) {
    for (size_t s = 0; s < self->slots_cap; s++) {
        if (self->slots[s].key) PyMem_Free(self->slots[s].block);
    }
    PyMem_Free(self->slots);
    PyMem_Free(self->entries);
    PyMem_Free(self->found.data);
    PyMem_Free(self->zero.data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Judge_methods[] = {
    {"feed", (PyCFunction)Judge_feed, METH_VARARGS,
     "feed(addresses, active, local, starts, clients): earlier records, in file order."},
    {"result", (PyCFunction)Judge_result, METH_NOARGS,
     "((addresses, starts, locals), since, records, appended): the bindings found."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject JudgeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "dhcpfoctl.leases._scan.Judge",
    .tp_basicsize = sizeof(Judge),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "New bindings judged from records read last first (see _scan.c).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Judge_init,
    .tp_dealloc = (destructor)Judge_dealloc,
    .tp_methods = Judge_methods,
};

/* backward(buf, bounds, first, stop[, journal]): see the file's head. With a true journal,
 * every record (superseded ones and other processes' shares included) is parsed, and goes
 * to journal columns last first; the first one that is not canonical stops the call, and
 * the result gains (journal columns | None, whether that record was superseded: counted,
 * so the caller reads it only for the journal). A Judge as the journal is fed those records
 * instead (the columns are then None). */
static PyObject *Scanner_backward(Scanner *self, PyObject *args) {
    scan_args a;
    Py_ssize_t first, stop, i, superseded = 0;
    int want_journal = 0, barrier_superseded = 0;
    Judge *judge = NULL;
    Py_ssize_t nargs = PyTuple_GET_SIZE(args);
    if (nargs == 5) {
        PyObject *journal_arg = PyTuple_GET_ITEM(args, 4);
        if (PyObject_TypeCheck(journal_arg, &JudgeType)) judge = (Judge *)journal_arg;
        want_journal = judge != NULL ? 1 : PyObject_IsTrue(journal_arg);
        if (want_journal < 0) return NULL;
    }
    PyObject *head = nargs == 5 ? PyTuple_GetSlice(args, 0, 4) : Py_NewRef(args);
    if (head == NULL) return NULL;
    int parsed = scan_args_get(head, &a, &first, &stop);
    Py_DECREF(head);
    if (parsed < 0) return NULL;
    columns_t c;
    journal_t j = {0};
    address_set taken = {0};
    if (columns_init(&c, stop - first) < 0) {
        scan_args_release(&a);
        return NULL;
    }
    if (address_set_init(&taken, stop - first) < 0) goto fail;
    if (want_journal && judge == NULL && journal_init(&j, stop - first) < 0) goto fail;
    for (i = stop - 1; i >= first; i--) {
        const uc *p, *e;
        row_t row;
        int64_t address;
        int mine, canonical = 0;
        if (record_span(&a, i, &p, &e) < 0) goto fail;
        if (parse_header(p, e, &address) == NULL || address < 0) break;
        if (want_journal) {
            canonical = parse_record(self, p, e, &row);
            if (canonical && judge != NULL) {
                /* transitions._effective_states and made_locally (no legacy state here) */
                int active = row.states[0] == judge->active_state ||
                             (row.states[0] == 0 && row.times[1] > row.times[0]);
                int local = (row.states[2] != 0 && row.states[2] != judge->active_state) ||
                            (row.times[5] != 0 && row.times[5] == row.times[0]);
                if (judge_feed(judge, (uint32_t)address, active, local, row.times[0],
                               hardware_fingerprint(row.hw, row.hw_len)) < 0) {
                    goto fail;
                }
            } else if (canonical && journal_add(&j, (uint32_t)address, &row) < 0) {
                goto fail;
            }
        }
        const int32_t *rows = block_rows(self, (uint32_t)(address >> 8), &mine);
        if (!mine) {
            if (want_journal && !canonical) break;
            continue;
        }
        if (rows == NULL) goto fail;
        if (rows[address & 0xFF] >= 0 || address_set_add(&taken, (uint32_t)address)) {
            superseded++;
            if (want_journal && !canonical) {
                barrier_superseded = 1;
                break;
            }
            continue;
        }
        if (!want_journal && !parse_record(self, p, e, &row)) break;
        if (want_journal && !canonical) break;
        if (columns_add(self, &c, (uint32_t)address, &row) < 0) goto fail;
    }
    /* The barrier's address was added to taken above only if it was unseen: harmless, the
     * call ends here. */
    PyMem_Free(taken.slots);
    scan_args_release(&a);
    columns_reverse(&c);
    if (c.count > 1 && PyList_Reverse(c.extras) < 0) {
        columns_free(&c);
        journal_free(&j);
        return NULL;
    }
    if (!want_journal) return Py_BuildValue("(Nnn)", columns_result(&c), i, superseded);
    return Py_BuildValue("(NnnNO)", columns_result(&c), i, superseded, journal_result(&j),
                         barrier_superseded ? Py_True : Py_False);
fail:
    PyMem_Free(taken.slots);
    columns_free(&c);
    journal_free(&j);
    scan_args_release(&a);
    return NULL;
}

/* ---- a journal's records: the columns transitions need --------------------------------- */

/* zlib's CRC-32 (reflected 0xEDB88320), as transitions.fingerprint takes it. */
static uint32_t crc32_table[256];

static void crc32_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc32_table[n] = c;
    }
}

/* The hardware half of a client fingerprint: 16 bits of the CRC of its bytes (big-endian
 * in hw, len of them), 1 when those are 0; 0 without a hardware address. */
static uint32_t hardware_fingerprint(uint64_t hw, int len) {
    if (len <= 0) return 0;
    uint32_t c = 0xFFFFFFFFu;
    for (int i = len - 1; i >= 0; i--) {
        uc byte = (uc)(hw >> (8 * i));
        c = crc32_table[(c ^ byte) & 0xFF] ^ (c >> 8);
    }
    uint32_t half = (c ^ 0xFFFFFFFFu) & 0xFFFF;
    return (half ? half : 1) << 16;
}

static PyObject *Scanner_journal(Scanner *self, PyObject *args) {
    scan_args a;
    Py_ssize_t first, stop, i;
    if (scan_args_get(args, &a, &first, &stop) < 0) return NULL;
    journal_t j;
    if (journal_init(&j, stop - first) < 0) {
        scan_args_release(&a);
        return NULL;
    }
    for (i = first; i < stop; i++) {
        const uc *p, *e;
        row_t row;
        int64_t address;
        if (record_span(&a, i, &p, &e) < 0) goto fail;
        if (!parse_record(self, p, e, &row)) break;
        if (parse_header(p, e, &address) == NULL || address < 0) break;
        if (journal_add(&j, (uint32_t)address, &row) < 0) goto fail;
    }
    scan_args_release(&a);
    return Py_BuildValue("(Nn)", journal_result(&j), i);
fail:
    journal_free(&j);
    scan_args_release(&a);
    return NULL;
}

/* first_records(addresses u32 buffer) -> bytes: 1 at the first occurrence of each address,
 * else 0 (a journal's snapshot records, see transitions.journal_bindings). */
static PyObject *scan_first_records(PyObject *module, PyObject *args) {
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*", &view)) return NULL;
    if (view.len % 4 != 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "scanner: addresses are not a uint32 array");
        return NULL;
    }
    Py_ssize_t count = view.len / 4;
    address_set seen = {0};
    PyObject *out = PyBytes_FromStringAndSize(NULL, count);
    if (out == NULL || address_set_init(&seen, count) < 0) {
        Py_XDECREF(out);
        PyBuffer_Release(&view);
        return NULL;
    }
    uc *mask = (uc *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < count; i++) {
        uint32_t address;
        memcpy(&address, (const char *)view.buf + 4 * i, 4);
        mask[i] = (uc)!address_set_add(&seen, address);
    }
    PyMem_Free(seen.slots);
    PyBuffer_Release(&view);
    return out;
}

/* ---- scattered column writes (LeaseTable.put_columns' updates of existing rows) --------- */

/* scatter(rows, targets, values): targets[k][rows[i]] = values[k][i] for every k and i, by
 * memcpy where target and value are buffers of the same item format (array, bytearray,
 * bytes), else item by item. Every row is checked against the target's length. */
static int scatter_one(PyObject *target, PyObject *value, const Py_ssize_t *rows, Py_ssize_t n) {
    Py_buffer tv, vv;
    if (PyObject_CheckBuffer(target) && PyObject_CheckBuffer(value) &&
        PyObject_GetBuffer(target, &tv, PyBUF_WRITABLE | PyBUF_FORMAT) == 0) {
        if (PyObject_GetBuffer(value, &vv, PyBUF_FORMAT) < 0) {
            PyBuffer_Release(&tv);
            return -1;
        }
        const char *tf = tv.format ? tv.format : "B", *vf = vv.format ? vv.format : "B";
        int same = tv.itemsize == vv.itemsize && tv.itemsize > 0 && strcmp(tf, vf) == 0 &&
                   vv.len / vv.itemsize >= n;
        int status = 0;
        if (same) {
            Py_ssize_t size = tv.itemsize, length = tv.len / size;
            for (Py_ssize_t i = 0; i < n; i++) {
                if (rows[i] < 0 || rows[i] >= length) {
                    PyErr_SetString(PyExc_IndexError, "scatter: row outside the column");
                    status = -1;
                    break;
                }
                memcpy((char *)tv.buf + rows[i] * size, (const char *)vv.buf + i * size,
                       (size_t)size);
            }
        }
        PyBuffer_Release(&vv);
        PyBuffer_Release(&tv);
        if (same || status < 0) return status;
    }
    PyErr_Clear();  /* not a writable buffer: item by item */
    PyObject *items = PySequence_Fast(value, "scatter: values are not a sequence");
    if (items == NULL) return -1;
    if (PySequence_Fast_GET_SIZE(items) < n) {
        Py_DECREF(items);
        PyErr_SetString(PyExc_ValueError, "scatter: fewer values than rows");
        return -1;
    }
    Py_ssize_t length = PySequence_Size(target);
    if (length < 0) {
        Py_DECREF(items);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (rows[i] < 0 || rows[i] >= length) {  /* no index from the end */
            Py_DECREF(items);
            PyErr_SetString(PyExc_IndexError, "scatter: row outside the column");
            return -1;
        }
        if (PySequence_SetItem(target, rows[i], PySequence_Fast_GET_ITEM(items, i)) < 0) {
            Py_DECREF(items);
            return -1;
        }
    }
    Py_DECREF(items);
    return 0;
}

static PyObject *scan_scatter(PyObject *module, PyObject *args) {
    PyObject *rows_in, *targets, *values;
    if (!PyArg_ParseTuple(args, "OOO", &rows_in, &targets, &values)) return NULL;
    PyObject *rows_seq = PySequence_Fast(rows_in, "scatter: rows are not a sequence");
    if (rows_seq == NULL) return NULL;
    PyObject *target_seq = NULL, *value_seq = NULL, *result = NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(rows_seq);
    Py_ssize_t *rows = PyMem_Malloc(n ? (size_t)n * sizeof(Py_ssize_t) : 1);
    if (rows == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        rows[i] = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(rows_seq, i));
        if (rows[i] == -1 && PyErr_Occurred()) goto done;
    }
    target_seq = PySequence_Fast(targets, "scatter: targets are not a sequence");
    value_seq = target_seq ? PySequence_Fast(values, "scatter: values are not a sequence") : NULL;
    if (value_seq == NULL) goto done;
    if (PySequence_Fast_GET_SIZE(target_seq) != PySequence_Fast_GET_SIZE(value_seq)) {
        PyErr_SetString(PyExc_ValueError, "scatter: as many targets as values");
        goto done;
    }
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(target_seq); k++) {
        if (scatter_one(PySequence_Fast_GET_ITEM(target_seq, k),
                        PySequence_Fast_GET_ITEM(value_seq, k), rows, n) < 0) {
            goto done;
        }
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(rows);
    Py_DECREF(rows_seq);
    Py_XDECREF(target_seq);
    Py_XDECREF(value_seq);
    return result;
}

/* ---- balance counts (dhcpfoctl.balance._scan's loop over every row of the lease table) -- */

/* The counter slots of one range, in balance.py's layout: 0..15 the rows per binding state,
 * then reserved, bootp, active-ended, free never-used / used, backup never-used / used, the
 * oldest ends of free / backup (TALLY_NO_ENDS: none), returns within the window. */
enum {
    TALLY_STATES = 16,
    TALLY_RESERVED = TALLY_STATES, TALLY_BOOTP, TALLY_ACTIVE_ENDED, TALLY_F_NEW, TALLY_F_USED,
    TALLY_B_NEW, TALLY_B_USED, TALLY_F_OLDEST, TALLY_B_OLDEST, TALLY_RETURNS, TALLY_SLOTS
};
#define TALLY_NO_ENDS ((int64_t)1 << 62)
/* Wire values (model.BindingState, model.LeaseFlag). */
enum { TALLY_FREE = 1, TALLY_ACTIVE = 2, TALLY_EXPIRED = 3, TALLY_RELEASED = 4, TALLY_BACKUP = 7 };
enum { TALLY_FLAG_RESERVED = 1, TALLY_FLAG_BOOTP = 2 };

/* A contiguous buffer of count items of itemsize bytes whose format is one of formats. */
static int tally_column(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, const char *formats,
                        const char *name) {
    if (PyObject_GetBuffer(obj, view, PyBUF_FORMAT | PyBUF_ND) < 0) return -1;
    const char *format = view->format ? view->format : "B";
    if (view->itemsize != itemsize || strlen(format) != 1 || strchr(formats, format[0]) == NULL ||
        view->len % itemsize != 0) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "tally: %s is not a %zd-byte '%s' array", name, itemsize,
                     formats);
        return -1;
    }
    return 0;
}

/* How many of the (sorted) firsts are at or below address: bisect.bisect_right. The halving
 * has no data-dependent branch for the compiler to mispredict (rows come in any order). */
static Py_ssize_t tally_bisect(const char *firsts, Py_ssize_t count, int64_t address) {
    Py_ssize_t lo = 0;
    while (count > 0) {
        Py_ssize_t half = count / 2;
        int64_t first;
        memcpy(&first, firsts + (lo + half) * 8, 8);
        int above = address < first;
        lo = above ? lo : lo + half + 1;
        count = above ? half : count - half - 1;
    }
    return lo;
}

/* tally(addresses u32, states u8, flags u8, ends i64, firsts i64, lasts i64, as_of,
 *       window_start) -> (slots, outside, fallback)
 * Every row counted into the range whose first is the last at or below its address (outside:
 * not in that range; firsts must be sorted): slots is a list per range of TALLY_SLOTS ints. Rows of a range without a
 * known binding state (0, or 16 and above) are not counted but listed in fallback, for Python's
 * effective_state. The four columns must be as long as each other, firsts as lasts. */
static PyObject *scan_tally(PyObject *module, PyObject *args) {
    PyObject *objs[6];
    long long as_of, window_start;
    if (!PyArg_ParseTuple(args, "OOOOOOLL", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4],
                          &objs[5], &as_of, &window_start)) {
        return NULL;
    }
    static const Py_ssize_t sizes[6] = {4, 1, 1, 8, 8, 8};
    static const char *const formats[6] = {"I", "B", "B", "q", "q", "q"};
    static const char *const names[6] = {"addresses", "states", "flags", "ends", "firsts", "lasts"};
    Py_buffer views[6];
    int held = 0;
    int64_t *slots = NULL;
    PyObject *fallback = NULL, *result = NULL;
    for (; held < 6; held++) {
        if (tally_column(objs[held], &views[held], sizes[held], formats[held], names[held]) < 0) {
            goto done;
        }
    }
    Py_ssize_t rows = views[0].len / 4, ranges = views[4].len / 8;
    if (views[1].len != rows || views[2].len != rows || views[3].len / 8 != rows ||
        views[5].len / 8 != ranges) {
        PyErr_SetString(PyExc_ValueError, "tally: columns of different lengths");
        goto done;
    }
    for (Py_ssize_t r = 1; r < ranges; r++) {
        int64_t before, first;
        memcpy(&before, (const char *)views[4].buf + (r - 1) * 8, 8);
        memcpy(&first, (const char *)views[4].buf + r * 8, 8);
        if (first < before) {
            PyErr_SetString(PyExc_ValueError, "tally: firsts are not sorted");
            goto done;
        }
    }
    if ((size_t)ranges > PY_SSIZE_T_MAX / (TALLY_SLOTS * sizeof(int64_t))) {
        PyErr_NoMemory();
        goto done;
    }
    slots = PyMem_Calloc(ranges ? (size_t)ranges * TALLY_SLOTS : 1, sizeof(int64_t));
    fallback = PyList_New(0);
    if (slots == NULL || fallback == NULL) {
        if (slots == NULL) PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t r = 0; r < ranges; r++) {
        slots[r * TALLY_SLOTS + TALLY_F_OLDEST] = TALLY_NO_ENDS;
        slots[r * TALLY_SLOTS + TALLY_B_OLDEST] = TALLY_NO_ENDS;
    }
    const char *addresses = views[0].buf, *firsts = views[4].buf, *lasts = views[5].buf,
               *ends_col = views[3].buf;
    const uc *states = views[1].buf, *flags = views[2].buf;
    Py_ssize_t outside = 0;
    for (Py_ssize_t i = 0; i < rows; i++) {
        uint32_t address;
        int64_t last = 0, ends;
        memcpy(&address, addresses + i * 4, 4);
        Py_ssize_t index = tally_bisect(firsts, ranges, address) - 1;
        if (index >= 0) memcpy(&last, lasts + index * 8, 8);
        if (index < 0 || (int64_t)address > last) {
            outside++;
            continue;
        }
        int state = states[i];
        if (state == 0 || state >= TALLY_STATES) {
            PyObject *row = PyLong_FromSsize_t(i);
            int failed = row == NULL || PyList_Append(fallback, row) < 0;
            Py_XDECREF(row);
            if (failed) goto done;
            continue;
        }
        memcpy(&ends, ends_col + i * 8, 8);
        int64_t *acc = slots + index * TALLY_SLOTS;
        acc[state]++;
        if (flags[i] & (TALLY_FLAG_RESERVED | TALLY_FLAG_BOOTP)) {
            acc[flags[i] & TALLY_FLAG_RESERVED ? TALLY_RESERVED : TALLY_BOOTP]++;
        } else if (state == TALLY_FREE) {
            acc[ends ? TALLY_F_USED : TALLY_F_NEW]++;
            if (ends < acc[TALLY_F_OLDEST]) acc[TALLY_F_OLDEST] = ends;
        } else if (state == TALLY_BACKUP) {
            acc[ends ? TALLY_B_USED : TALLY_B_NEW]++;
            if (ends < acc[TALLY_B_OLDEST]) acc[TALLY_B_OLDEST] = ends;
        }
        if (state == TALLY_ACTIVE && ends && ends <= as_of) acc[TALLY_ACTIVE_ENDED]++;
        if ((state == TALLY_FREE || state == TALLY_BACKUP || state == TALLY_EXPIRED ||
             state == TALLY_RELEASED) &&
            window_start < ends && ends <= as_of) {
            acc[TALLY_RETURNS]++;
        }
    }
    PyObject *per_range = PyList_New(ranges);
    if (per_range == NULL) goto done;
    for (Py_ssize_t r = 0; r < ranges; r++) {
        PyObject *acc = PyList_New(TALLY_SLOTS);
        if (acc == NULL) {
            Py_DECREF(per_range);
            goto done;
        }
        PyList_SET_ITEM(per_range, r, acc);
        for (Py_ssize_t k = 0; k < TALLY_SLOTS; k++) {
            PyObject *value = PyLong_FromLongLong(slots[r * TALLY_SLOTS + k]);
            if (value == NULL) {
                Py_DECREF(per_range);
                goto done;
            }
            PyList_SET_ITEM(acc, k, value);
        }
    }
    PyObject *outside_count = PyLong_FromSsize_t(outside);
    result = outside_count ? PyTuple_New(3) : NULL;
    if (result == NULL) {
        Py_XDECREF(outside_count);
        Py_DECREF(per_range);
        goto done;
    }
    PyTuple_SET_ITEM(result, 0, per_range);
    PyTuple_SET_ITEM(result, 1, outside_count);
    PyTuple_SET_ITEM(result, 2, Py_NewRef(fallback));
done:
    Py_XDECREF(fallback);
    PyMem_Free(slots);
    while (held > 0) PyBuffer_Release(&views[--held]);
    return result;
}

static PyMethodDef scan_functions[] = {
    {"first_records", scan_first_records, METH_VARARGS,
     "1 at the first occurrence of each address of a uint32 buffer, else 0 (bytes)."},
    {"scatter", scan_scatter, METH_VARARGS,
     "scatter(rows, targets, values): targets[k][rows[i]] = values[k][i]."},
    {"tally", scan_tally, METH_VARARGS,
     "tally(addresses, states, flags, ends, firsts, lasts, as_of, window_start): balance counts."},
    {NULL, NULL, 0, NULL},
};

/* ---- construction ---------------------------------------------------------------------- */

static int keywords_from(PyObject *mapping, keyword_t *table, int *n, int bytes_values) {
    PyObject *items = PyMapping_Items(mapping);
    if (items == NULL) return -1;
    *n = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *key, *value;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(items, i), "OO", &key, &value)) goto fail;
        if (!PyBytes_Check(key) || PyBytes_GET_SIZE(key) >= MAX_KEYWORD_LEN) {
            PyErr_SetString(PyExc_ValueError, "scanner: a keyword is not short bytes");
            goto fail;
        }
        if (PyBytes_GET_SIZE(key) == 0) continue;  /* the reader's "absent" entry */
        long number;
        if (bytes_values) {
            if (!PyBytes_Check(value) || PyBytes_GET_SIZE(value) != 1) {
                PyErr_SetString(PyExc_ValueError, "scanner: a packed start is not one byte");
                goto fail;
            }
            number = (uc)PyBytes_AS_STRING(value)[0];
        } else {
            number = PyLong_AsLong(value);
            if (number == -1 && PyErr_Occurred()) goto fail;
        }
        if (number < 0 || number > 255 || *n >= MAX_KEYWORDS) {
            PyErr_SetString(PyExc_ValueError, "scanner: keyword table out of range");
            goto fail;
        }
        keyword_t *k = &table[(*n)++];
        k->len = PyBytes_GET_SIZE(key);
        memcpy(k->text, PyBytes_AS_STRING(key), (size_t)k->len);
        k->value = (int)number;
    }
    Py_DECREF(items);
    return 0;
fail:
    Py_DECREF(items);
    return -1;
}

static int Scanner_init(Scanner *self, PyObject *args, PyObject *kwds) {
    PyObject *block_of, *states, *hw_types, *packed;
    long long never, earliest, latest;
    if (!PyArg_ParseTuple(args, "OllOOOLLL", &block_of, &self->share_index, &self->share_count,
                          &states, &hw_types, &packed, &never, &earliest, &latest)) {
        return -1;
    }
    if (self->share_count < 1 || self->share_index < 0 ||
        self->share_index >= self->share_count) {
        PyErr_SetString(PyExc_ValueError, "scanner: bad share");
        return -1;
    }
    if (keywords_from(states, self->states, &self->n_states, 0) < 0 ||
        keywords_from(hw_types, self->hw_types, &self->n_hw_types, 0) < 0) {
        return -1;
    }
    /* packed_starts: ((b";\n  uid ", b"\x04"), ...): the line start is the text after ";\n". */
    PyObject *pairs = PyDict_New();
    if (pairs == NULL) return -1;
    PyObject *iter = PyObject_GetIter(packed), *item;
    if (iter == NULL) {
        Py_DECREF(pairs);
        return -1;
    }
    while ((item = PyIter_Next(iter)) != NULL) {
        PyObject *long_form, *short_form;
        int ok = PyArg_ParseTuple(item, "SS", &long_form, &short_form) &&
                 PyBytes_GET_SIZE(long_form) > 2 &&
                 memcmp(PyBytes_AS_STRING(long_form), ";\n", 2) == 0;
        PyObject *line = ok ? PyBytes_FromStringAndSize(PyBytes_AS_STRING(long_form) + 2,
                                                        PyBytes_GET_SIZE(long_form) - 2)
                            : NULL;
        if (!ok && !PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "scanner: a packed start is not ;\\n...");
        }
        if (line == NULL || PyDict_SetItem(pairs, line, short_form) < 0) {
            Py_XDECREF(line);
            Py_DECREF(item);
            Py_DECREF(iter);
            Py_DECREF(pairs);
            return -1;
        }
        Py_DECREF(line);
        Py_DECREF(item);
    }
    Py_DECREF(iter);
    int failed = PyErr_Occurred() || keywords_from(pairs, self->packed, &self->n_packed, 1) < 0;
    Py_DECREF(pairs);
    if (failed) return -1;
    memset(self->unpackable, 0, sizeof self->unpackable);
    self->unpackable[0] = 1;
    for (int i = 0; i < self->n_packed; i++) self->unpackable[self->packed[i].value] = 1;
    Py_INCREF(block_of);
    Py_XSETREF(self->block_of, block_of);
    self->never = never;
    self->earliest = earliest;
    self->latest = latest;
    return 0;
}

static void Scanner_dealloc(Scanner *self) {
    for (size_t i = 0; i < self->blocks_cap; i++) {
        if (self->blocks[i].key != 0) {
            PyBuffer_Release(&self->blocks[i].view);
            Py_DECREF(self->blocks[i].array);
        }
    }
    PyMem_Free(self->blocks);
    Py_XDECREF(self->block_of);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Scanner_methods[] = {
    {"split", (PyCFunction)Scanner_split, METH_VARARGS, "The record split of buf[lo:hi]."},
    {"forward", (PyCFunction)Scanner_forward, METH_VARARGS, "Records in file order."},
    {"backward", (PyCFunction)Scanner_backward, METH_VARARGS, "Records last first."},
    {"journal", (PyCFunction)Scanner_journal, METH_VARARGS,
     "Every record in file order, as the columns new-binding counting needs."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "dhcpfoctl.leases._scan.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The compiled fast path of the lease reader (see _scan.c).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_methods = Scanner_methods,
};

static struct PyModuleDef scan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_scan",
    .m_doc = "Compiled lease scanner (see dhcpfoctl.leases.reader).",
    .m_size = -1,
    .m_methods = scan_functions,
};

PyMODINIT_FUNC PyInit__scan(void) {
    crc32_init();
    if (PyType_Ready(&ScannerType) < 0 || PyType_Ready(&JudgeType) < 0) return NULL;
    PyObject *module = PyModule_Create(&scan_module);
    if (module == NULL) return NULL;
    Py_INCREF(&ScannerType);
    if (PyModule_AddObject(module, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(&ScannerType);
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&JudgeType);
    if (PyModule_AddObject(module, "Judge", (PyObject *)&JudgeType) < 0) {
        Py_DECREF(&JudgeType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
