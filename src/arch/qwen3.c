/* Qwen3: the Llama layout (no biases by default) with a per-head RMSNorm of q and k before RoPE.
 * Rotations: R1 and the norm fusion reach q/k/v through their input columns, which the q/k norms
 * never see; R2 touches only V and O; R3 acts after the q/k norms and RoPE: all stay exact. R2 on
 * Q/K would not (the q/k norm weight is not rotation-invariant), and rotq never applies it there. */
#include <stdio.h>
#include <string.h>

#include "arch/builtin.h"

void rotq_arch_qwen3(rotq_arch *a) {
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "qwen3");
    snprintf(a->hf_ids[a->n_hf_ids++], sizeof a->hf_ids[0], "Qwen3ForCausalLM");
    snprintf(a->gguf_ids[a->n_gguf_ids++], sizeof a->gguf_ids[0], "qwen3");
    snprintf(a->gguf_write_id, sizeof a->gguf_write_id, "qwen3");
    snprintf(a->hf_write_id, sizeof a->hf_write_id, "Qwen3ForCausalLM");
    snprintf(a->hf_model_type, sizeof a->hf_model_type, "qwen3");
    rotq_arch_llama_like(a);
    rotq_arch_add_tensor(a, ROLE_Q_NORM, "model.layers.{L}.self_attn.q_norm.weight", "blk.{L}.attn_q_norm.weight", false);
    rotq_arch_add_tensor(a, ROLE_K_NORM, "model.layers.{L}.self_attn.k_norm.weight", "blk.{L}.attn_k_norm.weight", false);
    a->gguf_permute_qk = false;
    a->default_tied = true; /* Qwen3Config's default; the small models tie */
    /* sliding-window attention is a Qwen3 option the released models leave off */
    snprintf(a->require_true[a->n_require_true++], sizeof a->require_true[0], "!use_sliding_window");
}
