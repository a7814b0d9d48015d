/* OPT (facebook/opt-*, HF OPTForCausalLM): pre-LayerNorm decoder with weight and bias on every
 * norm, biases on every linear, a plain ReLU MLP (fc1 → act → fc2), no RoPE but a learned
 * position table whose row for position p is p + 2, and lm_head tied to the token embedding.
 * Variants with do_layer_norm_before = false (opt-350m: post-norm, with project_in/out because
 * word_embed_proj_dim differs from hidden_size) are refused at load, naming the key. */
#include <stdio.h>
#include <string.h>

#include "arch/builtin.h"

void rotq_arch_opt(rotq_arch *a) {
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "opt");
    snprintf(a->hf_ids[a->n_hf_ids++], sizeof a->hf_ids[0], "OPTForCausalLM");
    snprintf(a->hf_write_id, sizeof a->hf_write_id, "OPTForCausalLM");
    snprintf(a->hf_model_type, sizeof a->hf_model_type, "opt");
    /* llama.cpp has no OPT graph: no GGUF names, so GGUF output is refused */
    const char *p = "model.decoder.layers.{L}.";
    char buf[128];
#define T(role, suffix, opt) (snprintf(buf, sizeof buf, "%s%s", p, suffix), rotq_arch_add_tensor(a, role, buf, "", opt))
    rotq_arch_add_tensor(a, ROLE_EMBED, "model.decoder.embed_tokens.weight", "", false);
    rotq_arch_add_tensor(a, ROLE_POS_EMBED, "model.decoder.embed_positions.weight", "", false);
    T(ROLE_ATTN_NORM, "self_attn_layer_norm.weight", false);
    T(ROLE_ATTN_NORM_BIAS, "self_attn_layer_norm.bias", false);
    T(ROLE_Q, "self_attn.q_proj.weight", false);
    T(ROLE_Q_BIAS, "self_attn.q_proj.bias", false);
    T(ROLE_K, "self_attn.k_proj.weight", false);
    T(ROLE_K_BIAS, "self_attn.k_proj.bias", false);
    T(ROLE_V, "self_attn.v_proj.weight", false);
    T(ROLE_V_BIAS, "self_attn.v_proj.bias", false);
    T(ROLE_O, "self_attn.out_proj.weight", false);
    T(ROLE_O_BIAS, "self_attn.out_proj.bias", false);
    T(ROLE_MLP_NORM, "final_layer_norm.weight", false);  /* per layer, before the MLP */
    T(ROLE_MLP_NORM_BIAS, "final_layer_norm.bias", false);
    T(ROLE_UP, "fc1.weight", false);
    T(ROLE_UP_BIAS, "fc1.bias", false);
    T(ROLE_DOWN, "fc2.weight", false);
    T(ROLE_DOWN_BIAS, "fc2.bias", false);
#undef T
    rotq_arch_add_tensor(a, ROLE_FINAL_NORM, "model.decoder.final_layer_norm.weight", "", false);
    rotq_arch_add_tensor(a, ROLE_FINAL_NORM_BIAS, "model.decoder.final_layer_norm.bias", "", false);
    rotq_arch_add_tensor(a, ROLE_LM_HEAD, "lm_head.weight", "", true);

    rotq_arch_add_group(a, ROLE_ATTN_NORM, 3, (rotq_role[]){ROLE_Q, ROLE_K, ROLE_V});
    rotq_arch_add_group(a, ROLE_MLP_NORM, 1, (rotq_role[]){ROLE_UP});
    rotq_arch_add_group(a, ROLE_FINAL_NORM, 1, (rotq_role[]){ROLE_LM_HEAD});
    /* fuse_norms centres the stream writers before folding the LayerNorms (docs/rotation.md) */
    rotq_arch_set_ops(a, rotq_arch_standard_ops, ROTQ_STANDARD_OPS);
    a->norm = ROTQ_NORM_LAYER;
    a->mlp = ROTQ_MLP_RELU;
    a->pos = ROTQ_POS_LEARNED;
    a->pos_offset = 2;
    a->default_tied = true;
    rotq_arch_default_keys(&a->keys);
    snprintf(a->keys.intermediate, sizeof a->keys.intermediate, "ffn_dim");
    snprintf(a->keys.act, sizeof a->keys.act, "activation_function");
    const char *need[] = {"do_layer_norm_before", "enable_bias", "layer_norm_elementwise_affine"};
    for (int i = 0; i < 3; i++) snprintf(a->require_true[a->n_require_true++], sizeof a->require_true[0], "%s", need[i]);
    snprintf(a->require_eq_hidden, sizeof a->require_eq_hidden, "word_embed_proj_dim");
}
