/* Qwen2 / Qwen2.5: the Llama layout with required q/k/v biases and no GGUF Q/K permutation. */
#include <stdio.h>
#include <string.h>

#include "arch/builtin.h"

void rotq_arch_qwen2(rotq_arch *a) {
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "qwen2");
    snprintf(a->hf_ids[a->n_hf_ids++], sizeof a->hf_ids[0], "Qwen2ForCausalLM");
    snprintf(a->gguf_ids[a->n_gguf_ids++], sizeof a->gguf_ids[0], "qwen2");
    snprintf(a->gguf_write_id, sizeof a->gguf_write_id, "qwen2");
    snprintf(a->hf_write_id, sizeof a->hf_write_id, "Qwen2ForCausalLM");
    snprintf(a->hf_model_type, sizeof a->hf_model_type, "qwen2");
    rotq_arch_llama_like(a);
    for (int32_t i = 0; i < a->n_tensors; i++) {
        rotq_role r = a->tensors[i].role;
        if (r == ROLE_Q_BIAS || r == ROLE_K_BIAS || r == ROLE_V_BIAS) a->tensors[i].optional = false;
    }
    a->gguf_permute_qk = false;
    a->default_tied = false;
}
