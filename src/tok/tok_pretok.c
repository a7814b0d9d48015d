/* Normalizers and pre-tokenizers of the Hugging Face pipeline, with PCRE2 standing in for
 * Oniguruma (the regex engine of the `tokenizers` library) and utf8proc for Unicode tables. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok/tok.h"

const char ROTQ_TOK_GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* The regexes llama.cpp applies for each `tokenizer.ggml.pre` name, written as the models'
 * tokenizer.json files write them (llama.cpp's own rewrites split the same way). */
static const char *const PRE_GPT2[] = {ROTQ_TOK_GPT2_PATTERN, NULL};
static const char *const PRE_SMOLLM[] = {"\\p{N}", ROTQ_TOK_GPT2_PATTERN, NULL};
static const char *const PRE_LLAMA3[] = {
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const PRE_QWEN2[] = {
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const PRE_FALCON[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|`]+", ROTQ_TOK_GPT2_PATTERN, "[0-9][0-9][0-9]", NULL};
static const char *const PRE_DEFAULT[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|]+", ROTQ_TOK_GPT2_PATTERN, "\\p{N}+", "[0-9][0-9][0-9]", NULL};

const char *const *rotq_tok_pre_regexes(const char *name) {
    static const struct { const char *name; const char *const *re; } table[] = {
        {"default", PRE_DEFAULT}, {"gpt2", PRE_GPT2}, {"gpt-2", PRE_GPT2}, {"mpt", PRE_GPT2},
        {"olmo", PRE_GPT2}, {"jais", PRE_GPT2},
        {"smollm", PRE_SMOLLM}, {"starcoder", PRE_SMOLLM}, {"refact", PRE_SMOLLM},
        {"command-r", PRE_SMOLLM}, {"codeshell", PRE_SMOLLM}, {"exaone", PRE_SMOLLM},
        {"llama-bpe", PRE_LLAMA3}, {"llama3", PRE_LLAMA3}, {"llama-v3", PRE_LLAMA3}, {"dbrx", PRE_LLAMA3},
        {"smaug-bpe", PRE_LLAMA3}, {"falcon3", PRE_LLAMA3},
        {"qwen2", PRE_QWEN2}, {"stablelm2", PRE_QWEN2},
        {"falcon", PRE_FALCON},
    };
    if (!name || !*name) return PRE_DEFAULT;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].name, name) == 0) return table[i].re;
    return NULL;
}

/* ---- regex ------------------------------------------------------------------------------- */

/* Oniguruma's Unicode \s is the White_Space property; PCRE2's adds U+180E. Its \w is
 * Letter|Mark|Number|Connector_Punctuation; PCRE2's lacks marks. Spelled out to agree. */
#define WS_SET "\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
#define WORD_SET "\\p{L}\\p{M}\\p{N}\\p{Pc}"

static rotq_status rewrite_pattern(const char *pat, size_t len, rotq_tok_buf *out) {
    bool in_class = false;
    for (size_t i = 0; i < len; i++) {
        char c = pat[i];
        if (c == '\\' && i + 1 < len) {
            char e = pat[i + 1];
            const char *set = e == 's' || e == 'S' ? WS_SET : e == 'w' || e == 'W' ? WORD_SET : NULL;
            bool negated = e == 'S' || e == 'W';
            if (set && !(in_class && negated)) {
                if (!in_class) ROTQ_TRY(rotq_tok_buf_put(out, negated ? "[^" : "[", negated ? 2 : 1));
                ROTQ_TRY(rotq_tok_buf_put(out, set, strlen(set)));
                if (!in_class) ROTQ_TRY(rotq_tok_buf_put(out, "]", 1));
            } else {
                ROTQ_TRY(rotq_tok_buf_put(out, pat + i, 2));
            }
            i++;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            ROTQ_TRY(rotq_tok_buf_put(out, "[", 1));
            /* "[^]" and "[]": a ']' right after the opening is a literal */
            if (i + 1 < len && pat[i + 1] == '^') ROTQ_TRY(rotq_tok_buf_put(out, pat + ++i, 1));
            if (i + 1 < len && pat[i + 1] == ']') ROTQ_TRY(rotq_tok_buf_put(out, pat + ++i, 1));
            continue;
        }
        if (in_class && c == '[' && i + 1 < len && pat[i + 1] == ':') { /* POSIX [:name:] */
            const char *end = NULL;
            for (size_t j = i + 2; j + 1 < len; j++)
                if (pat[j] == ':' && pat[j + 1] == ']') { end = pat + j + 2; break; }
            if (end) {
                ROTQ_TRY(rotq_tok_buf_put(out, pat + i, (size_t)(end - (pat + i))));
                i = (size_t)(end - pat) - 1;
                continue;
            }
        }
        if (in_class && c == ']') in_class = false;
        ROTQ_TRY(rotq_tok_buf_put(out, &c, 1));
    }
    return ROTQ_OK;
}

rotq_status rotq_tok_regex_compile(const char *pattern, size_t len, void **out) {
    *out = NULL;
    rotq_tok_buf b = {0};
    rotq_status s = rewrite_pattern(pattern, len, &b);
    if (s != ROTQ_OK) {
        rotq_tok_buf_free(&b);
        return s;
    }
    int err;
    PCRE2_SIZE err_off;
    pcre2_code *re = pcre2_compile(b.p ? b.p : (PCRE2_SPTR) "", b.n,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        rotq_tok_buf_free(&b);
        return rotq_fail(ROTQ_ERR_UNSUPPORTED, "tokenizer: regex '%.*s' does not compile with PCRE2: %s (at %zu)",
                         (int)(len > 200 ? 200 : len), pattern, (const char *)msg, (size_t)err_off);
    }
    rotq_tok_buf_free(&b);
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter when JIT is missing */
    *out = re;
    return ROTQ_OK;
}

void rotq_tok_regex_free(void *re) { pcre2_code_free((pcre2_code *)re); }

static rotq_status match_data(rotq_tok_scratch *sc, pcre2_match_data **md) {
    if (!sc->match_data) {
        sc->match_data = pcre2_match_data_create(1, NULL);
        if (!sc->match_data) return rotq_fail(ROTQ_ERR_NOMEM, "tokenizer: out of memory (regex match data)");
    }
    *md = sc->match_data;
    return ROTQ_OK;
}

/* Finds the next non-empty match at or after `start`; false when none. */
static rotq_status regex_next(const pcre2_code *re, const uint8_t *s, size_t n, size_t start, rotq_tok_scratch *sc,
                              bool *found, size_t *ms, size_t *me) {
    pcre2_match_data *md;
    ROTQ_TRY(match_data(sc, &md));
    *found = false;
    while (start < n) {
        int rc = pcre2_match(re, s, n, start, 0, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) rc = pcre2_match(re, s, n, start, PCRE2_NO_JIT, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) return ROTQ_OK;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return rotq_fail(ROTQ_ERR_NUMERIC, "tokenizer: regex match failed: %s", (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] > ov[0]) {
            *found = true;
            *ms = ov[0];
            *me = ov[1];
            return ROTQ_OK;
        }
        start = ov[0] + rotq_tok_utf8_len(s + ov[0], n - ov[0]); /* skip an empty match */
    }
    return ROTQ_OK;
}

/* ---- splitting ----------------------------------------------------------------------------- */

static rotq_status words_push(rotq_tok_words *v, size_t off, size_t len, bool flag) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        rotq_tok_word *p = realloc(v->w, cap * sizeof *p);
        if (!p) return rotq_fail(ROTQ_ERR_NOMEM, "tokenizer: out of memory (%zu words)", cap);
        v->w = p;
        v->cap = cap;
    }
    v->w[v->n++] = (rotq_tok_word){off, len, flag};
    return ROTQ_OK;
}

/* Turns the match/gap spans of one piece (sc->spans, `first` = is a match, already inverted as
 * asked) into words, following HF's SplitDelimiterBehavior. */
static rotq_status apply_behavior(rotq_tok_split_behavior b, const rotq_tok_word *piece, rotq_tok_words *spans,
                                  rotq_tok_words *out) {
    size_t start_n = out->n;
    rotq_tok_word *sp = spans->w;
    size_t n = spans->n;
    switch (b) {
    case ROTQ_SPLIT_ISOLATED:
        for (size_t i = 0; i < n; i++) ROTQ_TRY(words_push(out, sp[i].off, sp[i].len, false));
        break;
    case ROTQ_SPLIT_REMOVED:
        for (size_t i = 0; i < n; i++)
            if (!sp[i].first) ROTQ_TRY(words_push(out, sp[i].off, sp[i].len, false));
        break;
    case ROTQ_SPLIT_MERGED_PREV: {
        bool prev_match = false;
        for (size_t i = 0; i < n; i++) {
            if (sp[i].first && !prev_match && out->n > start_n) out->w[out->n - 1].len += sp[i].len;
            else ROTQ_TRY(words_push(out, sp[i].off, sp[i].len, false));
            prev_match = sp[i].first;
        }
        break;
    }
    case ROTQ_SPLIT_MERGED_NEXT: {
        /* HF folds from the right: a match joins the span after it unless that one was a match too */
        bool prev_match = false;
        for (size_t k = n; k-- > 0;) {
            if (sp[k].first && !prev_match && out->n > start_n) {
                rotq_tok_word *last = &out->w[out->n - 1];
                last->len += last->off - sp[k].off;
                last->off = sp[k].off;
            } else {
                ROTQ_TRY(words_push(out, sp[k].off, sp[k].len, false));
            }
            prev_match = sp[k].first;
        }
        for (size_t i = start_n, j = out->n - 1; i < j; i++, j--) {
            rotq_tok_word t = out->w[i];
            out->w[i] = out->w[j];
            out->w[j] = t;
        }
        break;
    }
    case ROTQ_SPLIT_CONTIGUOUS: {
        bool prev_match = false;
        for (size_t i = 0; i < n; i++) {
            if (sp[i].first && prev_match && out->n > start_n) out->w[out->n - 1].len += sp[i].len;
            else ROTQ_TRY(words_push(out, sp[i].off, sp[i].len, false));
            prev_match = sp[i].first;
        }
        break;
    }
    }
    if (piece->first && out->n > start_n && out->w[start_n].off == piece->off) out->w[start_n].first = true;
    return ROTQ_OK;
}

/* Appends a gap or match span (relative offsets within the piece). */
static rotq_status span_add(rotq_tok_words *spans, const rotq_tok_word *piece, size_t s, size_t e, bool is_match,
                            bool invert) {
    if (e <= s) return ROTQ_OK;
    return words_push(spans, piece->off + s, e - s, is_match != invert);
}

typedef enum { MATCH_REGEX, MATCH_LITERAL, MATCH_DIGIT, MATCH_SPACE } match_kind;

static bool cp_is_numeric(uint32_t cp) {
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

/* Unicode White_Space, which is also Rust's char::is_whitespace. */
static bool cp_is_space(uint32_t cp) {
    return (cp >= 9 && cp <= 13) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

/* Splits every word of `words` by the matches of one matcher, then applies the behavior. */
static rotq_status split_words(rotq_tok_buf *buf, rotq_tok_words *words, rotq_tok_scratch *sc, match_kind kind,
                               const pcre2_code *re, const char *lit, size_t lit_len, rotq_tok_split_behavior beh,
                               bool invert) {
    rotq_tok_words *out = &sc->tmp;
    out->n = 0;
    for (size_t wi = 0; wi < words->n; wi++) {
        rotq_tok_word piece = words->w[wi];
        const uint8_t *s = buf->p + piece.off;
        size_t n = piece.len, prev = 0;
        sc->spans.n = 0;
        if (kind == MATCH_REGEX) {
            size_t pos = 0;
            for (;;) {
                bool found;
                size_t ms, me;
                ROTQ_TRY(regex_next(re, s, n, pos, sc, &found, &ms, &me));
                if (!found) break;
                ROTQ_TRY(span_add(&sc->spans, &piece, prev, ms, false, invert));
                ROTQ_TRY(span_add(&sc->spans, &piece, ms, me, true, invert));
                prev = pos = me;
            }
        } else if (kind == MATCH_LITERAL) {
            for (size_t i = 0; lit_len && i + lit_len <= n;) {
                if (memcmp(s + i, lit, lit_len) == 0) {
                    ROTQ_TRY(span_add(&sc->spans, &piece, prev, i, false, invert));
                    ROTQ_TRY(span_add(&sc->spans, &piece, i, i + lit_len, true, invert));
                    prev = i = i + lit_len;
                } else {
                    i++;
                }
            }
        } else {
            for (size_t i = 0; i < n;) {
                uint32_t cp;
                size_t cl = rotq_tok_utf8_decode(s + i, n - i, &cp);
                bool hit = cl && (kind == MATCH_DIGIT ? cp_is_numeric(cp) : cp_is_space(cp));
                if (!cl) cl = 1;
                if (hit) {
                    ROTQ_TRY(span_add(&sc->spans, &piece, prev, i, false, invert));
                    ROTQ_TRY(span_add(&sc->spans, &piece, i, i + cl, true, invert));
                    prev = i + cl;
                }
                i += cl;
            }
        }
        ROTQ_TRY(span_add(&sc->spans, &piece, prev, n, false, invert));
        ROTQ_TRY(apply_behavior(beh, &piece, &sc->spans, out));
    }
    rotq_tok_words t = *words;
    *words = *out;
    *out = t;
    return ROTQ_OK;
}

/* Metaspace: spaces become the replacement, a prefix is added as the scheme says. */
static rotq_status metaspace(const rotq_tok_pre *p, rotq_tok_buf *buf, rotq_tok_words *words, rotq_tok_scratch *sc) {
    rotq_tok_words *out = &sc->tmp;
    out->n = 0;
    for (size_t wi = 0; wi < words->n; wi++) {
        rotq_tok_word w = words->w[wi];
        size_t start = buf->n;
        bool starts_with_space = w.len > 0 && buf->p[w.off] == ' ';
        bool starts_with_repl = w.len >= p->replacement_len && memcmp(buf->p + w.off, p->replacement, p->replacement_len) == 0;
        bool prepend = !(starts_with_space || starts_with_repl) &&
                       (p->prepend == ROTQ_PREPEND_ALWAYS || (p->prepend == ROTQ_PREPEND_FIRST && w.first));
        if (prepend) ROTQ_TRY(rotq_tok_buf_put(buf, p->replacement, p->replacement_len));
        for (size_t i = 0; i < w.len; i++) {
            ROTQ_TRY(rotq_tok_buf_reserve(buf, p->replacement_len));
            uint8_t c = buf->p[w.off + i]; /* re-read: buf may have moved */
            if (c == ' ') ROTQ_TRY(rotq_tok_buf_put(buf, p->replacement, p->replacement_len));
            else ROTQ_TRY(rotq_tok_buf_put(buf, &c, 1));
        }
        ROTQ_TRY(words_push(out, start, buf->n - start, w.first));
    }
    rotq_tok_words t = *words;
    *words = *out;
    *out = t;
    if (p->split)
        ROTQ_TRY(split_words(buf, words, sc, MATCH_LITERAL, NULL, p->replacement, p->replacement_len,
                             ROTQ_SPLIT_MERGED_NEXT, false));
    return ROTQ_OK;
}

static rotq_status bytelevel_prefix(rotq_tok_buf *buf, rotq_tok_words *words) {
    for (size_t wi = 0; wi < words->n; wi++) {
        rotq_tok_word *w = &words->w[wi];
        if (w->len > 0 && buf->p[w->off] == ' ') continue;
        size_t start = buf->n;
        ROTQ_TRY(rotq_tok_buf_reserve(buf, w->len + 1));
        buf->p[buf->n++] = ' ';
        memcpy(buf->p + buf->n, buf->p + w->off, w->len);
        buf->n += w->len;
        w->off = start;
        w->len = buf->n - start;
    }
    return ROTQ_OK;
}

rotq_status rotq_tok_pretokenize(const rotq_tok_pre *pres, int32_t n_pres, rotq_tok_buf *buf, rotq_tok_words *words,
                                 rotq_tok_scratch *sc) {
    for (int32_t k = 0; k < n_pres; k++) {
        const rotq_tok_pre *p = &pres[k];
        switch (p->kind) {
        case ROTQ_PRE_SPLIT:
            if (p->re) ROTQ_TRY(split_words(buf, words, sc, MATCH_REGEX, p->re, NULL, 0, p->behavior, p->invert));
            else ROTQ_TRY(split_words(buf, words, sc, MATCH_LITERAL, NULL, p->literal, p->literal_len, p->behavior, p->invert));
            break;
        case ROTQ_PRE_DIGITS:
            ROTQ_TRY(split_words(buf, words, sc, MATCH_DIGIT, NULL, NULL, 0,
                                 p->individual_digits ? ROTQ_SPLIT_ISOLATED : ROTQ_SPLIT_CONTIGUOUS, false));
            break;
        case ROTQ_PRE_BYTELEVEL:
            if (p->add_prefix_space) ROTQ_TRY(bytelevel_prefix(buf, words));
            if (p->re) ROTQ_TRY(split_words(buf, words, sc, MATCH_REGEX, p->re, NULL, 0, ROTQ_SPLIT_ISOLATED, false));
            break;
        case ROTQ_PRE_METASPACE:
            ROTQ_TRY(metaspace(p, buf, words, sc));
            break;
        case ROTQ_PRE_WHITESPACE: /* the regex matches are the words; what lies between is dropped */
            ROTQ_TRY(split_words(buf, words, sc, MATCH_REGEX, p->re, NULL, 0, ROTQ_SPLIT_REMOVED, true));
            break;
        case ROTQ_PRE_WHITESPACE_SPLIT:
            ROTQ_TRY(split_words(buf, words, sc, MATCH_SPACE, NULL, NULL, 0, ROTQ_SPLIT_REMOVED, false));
            break;
        }
    }
    /* empty words carry no tokens */
    size_t j = 0;
    for (size_t i = 0; i < words->n; i++)
        if (words->w[i].len) words->w[j++] = words->w[i];
    words->n = j;
    return ROTQ_OK;
}

/* ---- normalizers --------------------------------------------------------------------------- */

/* Unicode normal form of the well-formed stretches of `s`; ill-formed bytes pass through. */
static rotq_status unicode_form(rotq_tok_norm_kind kind, const uint8_t *s, size_t n, rotq_tok_buf *out) {
    utf8proc_option_t opt = UTF8PROC_STABLE;
    if (kind == ROTQ_NORM_NFC || kind == ROTQ_NORM_NFKC) opt |= UTF8PROC_COMPOSE;
    else opt |= UTF8PROC_DECOMPOSE;
    if (kind == ROTQ_NORM_NFKC || kind == ROTQ_NORM_NFKD) opt |= UTF8PROC_COMPAT;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        bool ascii = true;
        while (j < n) {
            uint32_t cp;
            size_t cl = rotq_tok_utf8_decode(s + j, n - j, &cp);
            if (!cl) break;
            if (cp >= 0x80) ascii = false;
            j += cl;
        }
        if (j > i) {
            if (ascii) {
                ROTQ_TRY(rotq_tok_buf_put(out, s + i, j - i));
            } else {
                utf8proc_uint8_t *res = NULL;
                utf8proc_ssize_t rl = utf8proc_map(s + i, (utf8proc_ssize_t)(j - i), &res, opt);
                if (rl < 0) {
                    free(res);
                    ROTQ_TRY(rotq_tok_buf_put(out, s + i, j - i));
                } else {
                    rotq_status st = rotq_tok_buf_put(out, res, (size_t)rl);
                    free(res);
                    ROTQ_TRY(st);
                }
            }
            i = j;
        }
        if (i < n) { /* one ill-formed byte */
            ROTQ_TRY(rotq_tok_buf_put(out, s + i, 1));
            i++;
        }
    }
    return ROTQ_OK;
}

static rotq_status lowercase(const uint8_t *s, size_t n, rotq_tok_buf *out) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t cl = rotq_tok_utf8_decode(s + i, n - i, &cp);
        if (!cl) {
            ROTQ_TRY(rotq_tok_buf_put(out, s + i, 1));
            i++;
            continue;
        }
        uint8_t enc[8];
        size_t el;
        if (cp == 0x130) { /* İ lowercases to two characters (i + combining dot), as Rust does */
            el = rotq_tok_utf8_encode('i', enc);
            el += rotq_tok_utf8_encode(0x307, enc + el);
        } else {
            el = rotq_tok_utf8_encode((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), enc);
        }
        ROTQ_TRY(rotq_tok_buf_put(out, enc, el));
        i += cl;
    }
    return ROTQ_OK;
}

static rotq_status replace(const rotq_tok_norm *nm, const uint8_t *s, size_t n, rotq_tok_buf *out,
                           rotq_tok_scratch *sc) {
    size_t prev = 0;
    if (nm->re) {
        size_t pos = 0;
        for (;;) {
            bool found;
            size_t ms, me;
            ROTQ_TRY(regex_next(nm->re, s, n, pos, sc, &found, &ms, &me));
            if (!found) break;
            ROTQ_TRY(rotq_tok_buf_put(out, s + prev, ms - prev));
            ROTQ_TRY(rotq_tok_buf_put(out, nm->b, nm->b_len));
            prev = pos = me;
        }
    } else if (nm->a_len) {
        for (size_t i = 0; i + nm->a_len <= n;) {
            if (memcmp(s + i, nm->a, nm->a_len) == 0) {
                ROTQ_TRY(rotq_tok_buf_put(out, s + prev, i - prev));
                ROTQ_TRY(rotq_tok_buf_put(out, nm->b, nm->b_len));
                prev = i = i + nm->a_len;
            } else {
                i++;
            }
        }
    }
    return rotq_tok_buf_put(out, s + prev, n - prev);
}

static rotq_status strip(const rotq_tok_norm *nm, const uint8_t *s, size_t n, rotq_tok_buf *out) {
    size_t a = 0, b = n;
    if (nm->left) {
        while (a < b) {
            uint32_t cp;
            size_t cl = rotq_tok_utf8_decode(s + a, b - a, &cp);
            if (!cl || !cp_is_space(cp)) break;
            a += cl;
        }
    }
    if (nm->right) {
        while (b > a) {
            size_t k = b - 1;
            while (k > a && (s[k] & 0xC0) == 0x80 && b - k < 4) k--;
            uint32_t cp;
            size_t cl = rotq_tok_utf8_decode(s + k, b - k, &cp);
            if (cl != b - k || !cp_is_space(cp)) break;
            b = k;
        }
    }
    return rotq_tok_buf_put(out, s + a, b - a);
}

rotq_status rotq_tok_normalize(const rotq_tok_norm *norms, int32_t n_norms, const uint8_t *text, size_t len,
                               rotq_tok_buf *out, rotq_tok_scratch *sc) {
    rotq_tok_buf *src = &sc->a, *dst = &sc->b;
    src->n = 0;
    ROTQ_TRY(rotq_tok_buf_put(src, text, len));
    for (int32_t k = 0; k < n_norms; k++) {
        const rotq_tok_norm *nm = &norms[k];
        dst->n = 0;
        const uint8_t *s = src->p;
        size_t n = src->n;
        switch (nm->kind) {
        case ROTQ_NORM_NFC: case ROTQ_NORM_NFD: case ROTQ_NORM_NFKC: case ROTQ_NORM_NFKD:
            ROTQ_TRY(unicode_form(nm->kind, s, n, dst));
            break;
        case ROTQ_NORM_PREPEND:
            if (n) ROTQ_TRY(rotq_tok_buf_put(dst, nm->a, nm->a_len));
            ROTQ_TRY(rotq_tok_buf_put(dst, s, n));
            break;
        case ROTQ_NORM_REPLACE:
            ROTQ_TRY(replace(nm, s, n, dst, sc));
            break;
        case ROTQ_NORM_LOWERCASE:
            ROTQ_TRY(lowercase(s, n, dst));
            break;
        case ROTQ_NORM_STRIP:
            ROTQ_TRY(strip(nm, s, n, dst));
            break;
        }
        rotq_tok_buf *t = src;
        src = dst;
        dst = t;
    }
    return rotq_tok_buf_put(out, src->p, src->n);
}

void rotq_tok_norm_clear(rotq_tok_norm *n) {
    free(n->a);
    free(n->b);
    if (n->re) rotq_tok_regex_free(n->re);
    memset(n, 0, sizeof *n);
}

void rotq_tok_pre_clear(rotq_tok_pre *p) {
    if (p->re) rotq_tok_regex_free(p->re);
    free(p->literal);
    memset(p, 0, sizeof *p);
}
