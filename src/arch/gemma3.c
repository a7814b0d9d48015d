/* Gemma 3 (text): (1 + w) RMSNorms, the embedding scaled by sqrt(hidden), GeGLU, per-head q/k
 * norms, sandwich norms on the attention and MLP outputs, local sliding-window layers (5 of every 6)
 * with their own RoPE base, a query scale from query_pre_attn_scalar, tied embeddings.
 *
 * Rotations: the sandwich norms normalise o_proj's and down_proj's outputs before they join the
 * residual stream, with no linear after them to take R1ᵀ (norm(y·R) ∘ w ≠ (norm(y) ∘ w)·R), so a
 * fused R1 cannot be exact: the ops omit it and R1 is refused by name; layerwise rotations at q/k/v,
 * gate/up and lm_head take its place. R2 (V/O), R3 (after the q/k norms and RoPE) and R4 (down_proj's
 * input) are exact. The norm groups stay described (the fold would be exact) for a user's op list. */
#include <stdio.h>
#include <string.h>

#include "arch/builtin.h"

void rotq_arch_gemma3(rotq_arch *a) {
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "gemma3");
    snprintf(a->hf_ids[a->n_hf_ids++], sizeof a->hf_ids[0], "Gemma3ForCausalLM");
    snprintf(a->gguf_ids[a->n_gguf_ids++], sizeof a->gguf_ids[0], "gemma3");
    snprintf(a->gguf_write_id, sizeof a->gguf_write_id, "gemma3");
    snprintf(a->hf_write_id, sizeof a->hf_write_id, "Gemma3ForCausalLM");
    snprintf(a->hf_model_type, sizeof a->hf_model_type, "gemma3_text");
    rotq_arch_add_tensor(a, ROLE_EMBED, "model.embed_tokens.weight", "token_embd.weight", false);
    rotq_arch_add_tensor(a, ROLE_ATTN_NORM, "model.layers.{L}.input_layernorm.weight", "blk.{L}.attn_norm.weight", false);
    rotq_arch_add_tensor(a, ROLE_Q, "model.layers.{L}.self_attn.q_proj.weight", "blk.{L}.attn_q.weight", false);
    rotq_arch_add_tensor(a, ROLE_K, "model.layers.{L}.self_attn.k_proj.weight", "blk.{L}.attn_k.weight", false);
    rotq_arch_add_tensor(a, ROLE_V, "model.layers.{L}.self_attn.v_proj.weight", "blk.{L}.attn_v.weight", false);
    rotq_arch_add_tensor(a, ROLE_Q_NORM, "model.layers.{L}.self_attn.q_norm.weight", "blk.{L}.attn_q_norm.weight", false);
    rotq_arch_add_tensor(a, ROLE_K_NORM, "model.layers.{L}.self_attn.k_norm.weight", "blk.{L}.attn_k_norm.weight", false);
    rotq_arch_add_tensor(a, ROLE_O, "model.layers.{L}.self_attn.o_proj.weight", "blk.{L}.attn_output.weight", false);
    rotq_arch_add_tensor(a, ROLE_POST_ATTN_NORM, "model.layers.{L}.post_attention_layernorm.weight",
                         "blk.{L}.post_attention_norm.weight", false);
    rotq_arch_add_tensor(a, ROLE_MLP_NORM, "model.layers.{L}.pre_feedforward_layernorm.weight", "blk.{L}.ffn_norm.weight", false);
    rotq_arch_add_tensor(a, ROLE_GATE, "model.layers.{L}.mlp.gate_proj.weight", "blk.{L}.ffn_gate.weight", false);
    rotq_arch_add_tensor(a, ROLE_UP, "model.layers.{L}.mlp.up_proj.weight", "blk.{L}.ffn_up.weight", false);
    rotq_arch_add_tensor(a, ROLE_DOWN, "model.layers.{L}.mlp.down_proj.weight", "blk.{L}.ffn_down.weight", false);
    rotq_arch_add_tensor(a, ROLE_POST_MLP_NORM, "model.layers.{L}.post_feedforward_layernorm.weight",
                         "blk.{L}.post_ffw_norm.weight", false);
    rotq_arch_add_tensor(a, ROLE_FINAL_NORM, "model.norm.weight", "output_norm.weight", false);
    rotq_arch_add_tensor(a, ROLE_LM_HEAD, "lm_head.weight", "output.weight", true);

    rotq_arch_add_group(a, ROLE_ATTN_NORM, 3, (rotq_role[]){ROLE_Q, ROLE_K, ROLE_V});
    rotq_arch_add_group(a, ROLE_MLP_NORM, 2, (rotq_role[]){ROLE_GATE, ROLE_UP});
    rotq_arch_add_group(a, ROLE_FINAL_NORM, 1, (rotq_role[]){ROLE_LM_HEAD});
    /* no fuse_norms either: it serves R1 only, and folding the (1 + w) gains into q/k/v and gate/up
     * scales whole input columns that per-channel weight quantization then pays for */
    static const char *const ops[] = {"untie_embeddings", "rotate_r2", "online_r4", "online_r3"};
    rotq_arch_set_ops(a, ops, 4);
    a->norm = ROTQ_NORM_RMS;
    a->norm_offset = 1.0;
    a->gguf_norm_shift = true;
    a->embed_scale_sqrt = true;
    a->mlp = ROTQ_MLP_GEGLU;
    a->gguf_permute_qk = false;
    a->default_tied = true;
    a->default_sliding_pattern = 6;
    a->default_rope_local_theta = 10000.0;
    rotq_arch_default_keys(&a->keys);
    snprintf(a->keys.act, sizeof a->keys.act, "hidden_activation|hidden_act");
    snprintf(a->keys.sliding_window, sizeof a->keys.sliding_window, "sliding_window");
    snprintf(a->keys.sliding_pattern, sizeof a->keys.sliding_pattern, "sliding_window_pattern|_sliding_window_pattern");
    snprintf(a->keys.rope_local_theta, sizeof a->keys.rope_local_theta, "rope_local_base_freq");
    snprintf(a->keys.attn_scalar, sizeof a->keys.attn_scalar, "query_pre_attn_scalar");
    snprintf(a->keys.layer_types, sizeof a->keys.layer_types, "layer_types");
    snprintf(a->keys.softcaps, sizeof a->keys.softcaps, "final_logit_softcapping|attn_logit_softcapping");
    snprintf(a->require_true[a->n_require_true++], sizeof a->require_true[0], "!use_bidirectional_attention");
}
