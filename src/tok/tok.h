/* Tokenizers: byte-level BPE (GPT-2/Qwen2/Llama-3/SmolLM2) and SentencePiece-style BPE with byte
 * fallback (Llama-2/Mistral/llama2.c), loaded from tokenizer.json, GGUF metadata or tokenizer.bin.
 *
 * Encoding runs the Hugging Face pipeline: added/special tokens are cut out of the raw text first,
 * the rest is normalized, pre-tokenized into words (regex splits etc.), and each word goes through
 * the model (rank-ordered merges for BPE, score-ordered merges for the llama2.c/llama.cpp SPM path).
 * A tokenizer is read-only after loading, so several threads may encode with it at once.
 */
#ifndef ROTQ_TOK_TOK_H
#define ROTQ_TOK_TOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "rotq.h"

struct rotq_model;

/* ---- small containers (tok_util.c) ------------------------------------------------------- */

typedef struct rotq_tok_buf {
    uint8_t *p;
    size_t n, cap;
} rotq_tok_buf;

rotq_status rotq_tok_buf_put(rotq_tok_buf *b, const void *data, size_t n);
rotq_status rotq_tok_buf_reserve(rotq_tok_buf *b, size_t extra);
void rotq_tok_buf_free(rotq_tok_buf *b);

/* Growable int32 array (token ids). */
typedef struct rotq_tok_ids {
    int32_t *p;
    int64_t n, cap;
} rotq_tok_ids;

rotq_status rotq_tok_ids_push(rotq_tok_ids *v, int32_t id);

uint64_t rotq_tok_hash(const void *data, size_t n);

/* Open-addressing map from a byte string to a value; keys are borrowed, not copied. */
typedef struct rotq_tok_strmap {
    const uint8_t **keys;
    uint32_t *lens;
    int64_t *vals;
    uint64_t cap, count; /* cap is a power of two; 0 before the first insert */
} rotq_tok_strmap;

/* Inserts or overwrites. */
rotq_status rotq_tok_strmap_put(rotq_tok_strmap *m, const void *key, size_t len, int64_t val);
/* The value, or -1 when absent. */
int64_t rotq_tok_strmap_get(const rotq_tok_strmap *m, const void *key, size_t len);
void rotq_tok_strmap_free(rotq_tok_strmap *m);

/* Map from a pair of token ids to (merge rank, merged id). */
typedef struct rotq_tok_pairmap {
    uint64_t *keys; /* (left << 32 | right) + 1; 0 marks an empty slot */
    int32_t *rank, *merged;
    uint64_t cap, count;
} rotq_tok_pairmap;

rotq_status rotq_tok_pairmap_put(rotq_tok_pairmap *m, int32_t left, int32_t right, int32_t rank, int32_t merged);
/* True when the pair merges; fills rank and merged id. First insertion of a pair wins. */
bool rotq_tok_pairmap_get(const rotq_tok_pairmap *m, int32_t left, int32_t right, int32_t *rank, int32_t *merged);
void rotq_tok_pairmap_free(rotq_tok_pairmap *m);

/* ---- UTF-8 and the GPT-2 byte mapping (tok_util.c) ------------------------------------------ */

/* Length of the well-formed UTF-8 character at p (1 for an invalid byte, so that scans advance). */
size_t rotq_tok_utf8_len(const uint8_t *p, size_t n);
/* Decodes a well-formed character; returns its length or 0 when the bytes are not well-formed. */
size_t rotq_tok_utf8_decode(const uint8_t *p, size_t n, uint32_t *cp);
/* Encodes one code point (< 0x110000), returns the number of bytes (1..4). */
size_t rotq_tok_utf8_encode(uint32_t cp, uint8_t out[4]);
/* GPT-2's reversible byte → code point table (printable bytes map to themselves). */
uint32_t rotq_tok_byte_to_cp(uint8_t b);
/* Inverse of the table; -1 for code points not produced by it. */
int32_t rotq_tok_cp_to_byte(uint32_t cp);

/* ---- normalizers and pre-tokenizers (tok_pretok.c) ----------------------------------------- */

typedef enum rotq_tok_norm_kind {
    ROTQ_NORM_NFC, ROTQ_NORM_NFD, ROTQ_NORM_NFKC, ROTQ_NORM_NFKD,
    ROTQ_NORM_PREPEND,    /* prepend `a` to a non-empty text */
    ROTQ_NORM_REPLACE,    /* replace literal `a` (or regex) by `b` */
    ROTQ_NORM_LOWERCASE,
    ROTQ_NORM_STRIP,      /* trim white space left and/or right */
} rotq_tok_norm_kind;

typedef struct rotq_tok_norm {
    rotq_tok_norm_kind kind;
    char *a, *b;
    size_t a_len, b_len;
    void *re;             /* pcre2_code* for a Replace with a Regex pattern */
    bool left, right;     /* Strip */
} rotq_tok_norm;

typedef enum rotq_tok_split_behavior {
    ROTQ_SPLIT_ISOLATED, ROTQ_SPLIT_REMOVED, ROTQ_SPLIT_MERGED_PREV, ROTQ_SPLIT_MERGED_NEXT,
    ROTQ_SPLIT_CONTIGUOUS,
} rotq_tok_split_behavior;

typedef enum rotq_tok_pre_kind {
    ROTQ_PRE_SPLIT,         /* regex or literal split with a behavior (HF "Split") */
    ROTQ_PRE_DIGITS,        /* HF "Digits": numeric characters apart (each, or as runs) */
    ROTQ_PRE_BYTELEVEL,     /* optional prefix space + GPT-2 regex; the model then maps bytes */
    ROTQ_PRE_METASPACE,     /* spaces → replacement (▁), optional prefix, optional split */
    ROTQ_PRE_WHITESPACE,    /* \w+|[^\w\s]+ kept, the rest dropped */
    ROTQ_PRE_WHITESPACE_SPLIT,
} rotq_tok_pre_kind;

typedef enum rotq_tok_prepend { ROTQ_PREPEND_NEVER, ROTQ_PREPEND_FIRST, ROTQ_PREPEND_ALWAYS } rotq_tok_prepend;

typedef struct rotq_tok_pre {
    rotq_tok_pre_kind kind;
    void *re;                    /* pcre2_code* (SPLIT with regex, BYTELEVEL with use_regex, WHITESPACE) */
    char *literal;               /* SPLIT with a String pattern */
    size_t literal_len;
    rotq_tok_split_behavior behavior;
    bool invert;
    bool individual_digits;      /* DIGITS */
    bool add_prefix_space;       /* BYTELEVEL */
    char replacement[8];         /* METASPACE, UTF-8 */
    size_t replacement_len;
    rotq_tok_prepend prepend;    /* METASPACE */
    bool split;                  /* METASPACE */
} rotq_tok_pre;

/* Compiles a pattern written for Oniguruma/HF with PCRE2 (UTF, UCP, JIT when available); `\s` is
 * rewritten to Unicode White_Space exactly, as Oniguruma defines it. */
rotq_status rotq_tok_regex_compile(const char *pattern, size_t len, void **out);
void rotq_tok_regex_free(void *re);
/* The pattern a llama.cpp `tokenizer.ggml.pre` name stands for, as a list of regexes applied in
 * turn (NULL-terminated; static storage). NULL when the name is unknown. */
const char *const *rotq_tok_pre_regexes(const char *pre_name);
/* GPT-2's pattern, used by the ByteLevel pre-tokenizer when use_regex is set. */
extern const char ROTQ_TOK_GPT2_PATTERN[];

/* A list of words: spans into a byte buffer that steps may append to. */
typedef struct rotq_tok_word {
    size_t off, len;
    bool first;          /* starts at offset 0 of the original input (Metaspace prepend "first") */
} rotq_tok_word;

typedef struct rotq_tok_words {
    rotq_tok_word *w;
    size_t n, cap;
} rotq_tok_words;

typedef struct rotq_tok_scratch rotq_tok_scratch;

/* Applies the normalizers to text, appending the result to `out` (which must not be sc->a or
 * sc->b: they hold the intermediate steps). Ill-formed UTF-8 bytes pass through unchanged. */
rotq_status rotq_tok_normalize(const rotq_tok_norm *norms, int32_t n_norms, const uint8_t *text, size_t len,
                               rotq_tok_buf *out, rotq_tok_scratch *sc);
/* Runs the pre-tokenizer steps over `words` (spans of *buf), replacing the list. */
rotq_status rotq_tok_pretokenize(const rotq_tok_pre *pres, int32_t n_pres, rotq_tok_buf *buf,
                                 rotq_tok_words *words, rotq_tok_scratch *sc);
void rotq_tok_norm_clear(rotq_tok_norm *n);
void rotq_tok_pre_clear(rotq_tok_pre *p);

/* ---- the tokenizer ------------------------------------------------------------------------- */

typedef enum rotq_tok_model_kind {
    ROTQ_TOK_BPE,   /* merges by rank (HF BPE; GGUF "gpt2") */
    ROTQ_TOK_SPM,   /* merges by score (llama2.c tokenizer.bin; GGUF "llama") */
} rotq_tok_model_kind;

/* Per-token attributes. */
enum {
    ROTQ_TOKA_SPECIAL = 1,   /* control / special added token: skipped by decode(skip_special) */
    ROTQ_TOKA_ADDED = 2,     /* matched in raw text before pre-tokenization */
    ROTQ_TOKA_BYTE = 4,      /* <0xNN> byte-fallback token */
    ROTQ_TOKA_UNKNOWN = 8,
};

typedef struct rotq_tok_added {
    char *content;
    size_t len;
    int32_t id;
    bool special, lstrip, rstrip, single_word, normalized;
} rotq_tok_added;

/* How the SPM path adds the dummy prefix. */
typedef enum rotq_tok_spm_prefix {
    ROTQ_SPM_PREFIX_NONE,
    ROTQ_SPM_PREFIX_TEXT_START,    /* once, before the whole text (llama2.c) */
    ROTQ_SPM_PREFIX_AFTER_SPECIAL, /* before each text fragment that starts the text or follows an added token (llama.cpp) */
} rotq_tok_spm_prefix;

struct rotq_tokenizer {
    rotq_tok_model_kind model;
    int32_t n_vocab;
    char **piece;              /* token text as stored in the vocabulary (NULL for holes) */
    uint32_t *piece_len;
    float *score;              /* SPM merge priority (NULL for BPE) */
    uint8_t *attr;             /* ROTQ_TOKA_* */
    rotq_tok_strmap vocab;     /* piece → id */
    rotq_tok_pairmap merges;   /* BPE: (left, right) → (rank, merged) */
    rotq_tok_pairmap bigrams;  /* adjacent (char, char) pairs inside any vocabulary token (bytes when
                                  byte-level): where a text has none, no token can span, so long words
                                  split there without changing the result */

    uint8_t **dec;             /* bytes each id decodes to */
    uint32_t *dec_len;

    rotq_tok_norm *norms;
    int32_t n_norms;
    rotq_tok_pre *pres;
    int32_t n_pres;
    rotq_tok_added *added;     /* sorted by content length, longest first */
    int32_t n_added;

    bool byte_level;           /* words are raw bytes mapped through the GPT-2 table */
    uint8_t byte_utf8[256][3]; /* byte-level: UTF-8 of each byte's char (length, then 1-2 bytes) */
    int32_t byte_id[256];      /* byte-level: id of each byte's char; otherwise id of <0xNN>; -1 none */
    bool byte_fallback;        /* BPE: unknown chars become <0xNN> tokens */
    bool ignore_merges;        /* BPE: a word that is a vocabulary entry is taken whole */
    bool fuse_unk;
    int32_t unk_id;

    rotq_tok_spm_prefix spm_prefix;
    bool spm_escape_spaces;    /* "▁" stands for ' ': SPM encode escapes spaces (GGUF; llama2.c pieces
                                  hold ' '), and decode turns it back (all SentencePiece-style) */
    bool llama2c_chars;        /* SPM: split chars as llama2.c (continuation bytes, max 4) */

    bool decode_strip_space;   /* decode drops one leading space (SentencePiece dummy prefix) from the
                                  first token, or (llama2.c, llama.cpp) from the first after BOS/control */
    bool strip_after_special;
    bool decode_bytes;         /* <0xNN> pieces decode to their byte (HF ByteFallback decoder) */

    int32_t bos_id, eos_id;
    bool add_bos;              /* the model's own default */
    char kind_name[32];        /* "byte-level BPE", ... for messages */
};

rotq_tokenizer *rotq_tok_new(void);
/* Allocates the vocabulary arrays for n tokens. */
rotq_status rotq_tok_alloc_vocab(rotq_tokenizer *t, int32_t n);
/* Sets token `id`'s text (copied). */
rotq_status rotq_tok_set_piece(rotq_tokenizer *t, int32_t id, const void *text, size_t len);
rotq_status rotq_tok_add_added(rotq_tokenizer *t, const rotq_tok_added *a);
/* Builds the maps, byte tables, decode strings and bigram set once all pieces, added tokens and
 * flags (byte_level, spm_escape_spaces, decode_bytes) are set. Merges are added after it. */
rotq_status rotq_tok_finish(rotq_tokenizer *t, const char *where);
int32_t rotq_tok_lookup(const rotq_tokenizer *t, const void *text, size_t len);

/* Model steps (tok_model.c); append ids of one word / fragment to out. The BPE word step does
 * not apply ignore_merges (the caller does, on whole words). */
rotq_status rotq_tok_bpe_word(const rotq_tokenizer *t, const uint8_t *w, size_t n, rotq_tok_ids *out,
                              rotq_tok_scratch *sc);
/* SPM over a whole escaped text: cut into independent pieces, then rotq_tok_spm_fragment. */
rotq_status rotq_tok_spm_text(const rotq_tokenizer *t, const uint8_t *text, size_t n, rotq_tok_ids *out,
                              rotq_tok_scratch *sc);
/* Runs of at least this many bytes are cut where no token can span. */
#define ROTQ_TOK_CUT_MIN 32
/* True when no token can span the boundary before s[p] (0 < p < n, p on a character boundary). */
bool rotq_tok_safe_cut(const rotq_tokenizer *t, const uint8_t *s, size_t n, size_t p);
rotq_status rotq_tok_spm_fragment(const rotq_tokenizer *t, const uint8_t *text, size_t n, rotq_tok_ids *out,
                                  rotq_tok_scratch *sc);

/* Loaders. */
rotq_status rotq_tok_from_json(const char *json, size_t len, const char *config_json, size_t config_len,
                               const char *where, rotq_tokenizer **out);
rotq_status rotq_tok_from_gguf(const struct rotq_model *m, rotq_tokenizer **out);
rotq_status rotq_tok_from_llama2c(const uint8_t *data, size_t size, const char *where, rotq_tokenizer **out);

/* ---- carrying a tokenizer to the other format on save (tok_export.c) ----------------------- */

struct rotq_meta;

/* llama.cpp's tokenizer.* keys for a model whose tokenizer came as tokenizer.json (+ tokenizer_config.json)
 * or llama2.c tokenizer.bin: "gpt2" (byte-level BPE: merges, pre-tokenizer name matched by regex) or
 * "llama" (SentencePiece BPE: scores). *n is 0, with a warning on stderr, when there is no tokenizer or it
 * cannot be expressed; fails only when out of memory. Free with rotq_tok_export_meta_free. */
rotq_status rotq_tok_export_gguf_meta(const struct rotq_model *m, const char *where, struct rotq_meta **out,
                                      int64_t *n);
void rotq_tok_export_meta_free(struct rotq_meta *kv, int64_t n);
/* Writes tokenizer.json, tokenizer_config.json and special_tokens_map.json into `dir` for a model whose
 * tokenizer came as GGUF metadata or llama2.c tokenizer.bin (nothing when it carries a tokenizer.json;
 * carried files of those names are not replaced). A tokenizer that cannot be written gets a warning;
 * fails only on memory or I/O errors. */
rotq_status rotq_tok_export_hf(const struct rotq_model *m, const char *dir);

/* Scratch memory reused across the words of one encode call. */
struct rotq_tok_scratch {
    rotq_tok_buf a, b;            /* normalizer / pre-tokenizer temporaries */
    rotq_tok_words tmp, spans;    /* pre-tokenizer word lists; spans use `first` as "is a match" */
    void *match_data;             /* pcre2_match_data* */
    void *sym;                    /* model symbols */
    size_t sym_cap;
    void *heap;
    size_t heap_cap;
    rotq_tok_buf mapped;          /* byte-level word mapped to vocabulary text */
};

void rotq_tok_scratch_free(rotq_tok_scratch *sc);

#endif
