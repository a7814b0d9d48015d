/* Loader for llama2.c's tokenizer.bin: int32 max_token_length, then for every token a float32
 * score, an int32 byte length and the bytes (pieces hold real spaces, not "▁"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok.h"

static int32_t rd_i32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

rotq_status rotq_tok_from_llama2c(const uint8_t *data, size_t size, const char *where, rotq_tokenizer **out) {
    *out = NULL;
    if (size < 4) return rotq_fail(ROTQ_ERR_FORMAT, "%s: %zu bytes, too short for a llama2.c tokenizer", where, size);
    int32_t max_len = rd_i32(data);
    if (max_len <= 0 || max_len > 65536)
        return rotq_fail(ROTQ_ERR_FORMAT, "%s: max token length %d is not plausible for a llama2.c tokenizer", where, max_len);
    /* the file does not store the token count: walk it once to count and validate */
    int32_t n = 0;
    size_t pos = 4;
    while (pos < size) {
        if (size - pos < 8) return rotq_fail(ROTQ_ERR_FORMAT, "%s: token %d header cut short at byte %zu", where, n, pos);
        int32_t len = rd_i32(data + pos + 4);
        if (len < 0 || len > max_len || (size_t)len > size - pos - 8)
            return rotq_fail(ROTQ_ERR_FORMAT, "%s: token %d has length %d (max %d, %zu bytes left)", where, n, len,
                             max_len, size - pos - 8);
        pos += 8 + (size_t)len;
        if (++n > 16 * 1024 * 1024) return rotq_fail(ROTQ_ERR_FORMAT, "%s: too many tokens", where);
    }
    if (n < 3) return rotq_fail(ROTQ_ERR_FORMAT, "%s: only %d tokens", where, n);
    rotq_tokenizer *t = rotq_tok_new();
    if (!t) return rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", where);
    rotq_status s = rotq_tok_alloc_vocab(t, n);
    if (s == ROTQ_OK && !(t->score = calloc((size_t)n, sizeof *t->score)))
        s = rotq_fail(ROTQ_ERR_NOMEM, "%s: out of memory", where);
    pos = 4;
    for (int32_t i = 0; i < n && s == ROTQ_OK; i++) {
        memcpy(&t->score[i], data + pos, 4);
        int32_t len = rd_i32(data + pos + 4);
        s = rotq_tok_set_piece(t, i, data + pos + 8, (size_t)len);
        pos += 8 + (size_t)len;
    }
    if (s == ROTQ_OK) {
        /* llama2.c's conventions: 0 <unk>, 1 <s>, 2 </s>; never matched in text, skipped in output */
        t->unk_id = 0;
        t->bos_id = 1;
        t->eos_id = 2;
        t->add_bos = true;
        for (int i = 0; i < 3; i++) t->attr[i] |= ROTQ_TOKA_SPECIAL;
        t->model = ROTQ_TOK_SPM;
        t->spm_prefix = ROTQ_SPM_PREFIX_TEXT_START;
        t->spm_escape_spaces = false;
        t->decode_bytes = true;
        t->llama2c_chars = true;
        t->decode_strip_space = true;
        t->strip_after_special = true;
        snprintf(t->kind_name, sizeof t->kind_name, "llama2.c SentencePiece BPE");
        s = rotq_tok_finish(t, where);
    }
    if (s != ROTQ_OK) {
        rotq_tokenizer_free(t);
        return s;
    }
    *out = t;
    return ROTQ_OK;
}
