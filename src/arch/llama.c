/* Built-in descriptions of the Llama family (Llama 2/3, Mistral, SmolLM2, TinyLlama) and the
 * helpers the other built-ins reuse: a tensor table entry and the standard op order. */
#include <stdio.h>
#include <string.h>

#include "arch/builtin.h"

void rotq_arch_add_tensor(rotq_arch *a, rotq_role role, const char *hf, const char *gguf, bool optional) {
    rotq_arch_tensor *t = &a->tensors[a->n_tensors++];
    t->role = role;
    snprintf(t->hf, sizeof t->hf, "%s", hf);
    snprintf(t->gguf, sizeof t->gguf, "%s", gguf);
    t->per_layer = strstr(hf, "{L}") != NULL;
    t->optional = optional;
}

void rotq_arch_add_group(rotq_arch *a, rotq_role norm, int32_t n, const rotq_role *linears) {
    rotq_norm_group *g = &a->groups[a->n_groups++];
    g->norm = norm;
    g->n_linears = n;
    for (int32_t i = 0; i < n; i++) g->linears[i] = linears[i];
}

void rotq_arch_set_ops(rotq_arch *a, const char *const *ops, int32_t n) {
    a->n_ops = n;
    for (int32_t i = 0; i < n; i++) snprintf(a->ops[i], sizeof a->ops[i], "%s", ops[i]);
}

void rotq_arch_default_keys(rotq_config_keys *k) {
    snprintf(k->hidden, sizeof k->hidden, "hidden_size|n_embd|d_model");
    snprintf(k->intermediate, sizeof k->intermediate, "intermediate_size|n_inner|ffn_dim");
    snprintf(k->n_layers, sizeof k->n_layers, "num_hidden_layers|n_layer");
    snprintf(k->n_heads, sizeof k->n_heads, "num_attention_heads|n_head");
    snprintf(k->n_kv_heads, sizeof k->n_kv_heads, "num_key_value_heads");
    snprintf(k->head_dim, sizeof k->head_dim, "head_dim");
    snprintf(k->vocab, sizeof k->vocab, "vocab_size");
    snprintf(k->max_pos, sizeof k->max_pos, "max_position_embeddings|n_positions");
    snprintf(k->norm_eps, sizeof k->norm_eps, "rms_norm_eps|layer_norm_eps|layer_norm_epsilon");
    snprintf(k->rope_theta, sizeof k->rope_theta, "rope_theta");
    snprintf(k->tied, sizeof k->tied, "tie_word_embeddings");
    snprintf(k->act, sizeof k->act, "activation_function|hidden_act");
}

/* Standard decoder tensors shared by Llama-like models (separate q/k/v and gate/up). */
void rotq_arch_llama_like(rotq_arch *a) {
    rotq_arch_add_tensor(a, ROLE_EMBED, "model.embed_tokens.weight", "token_embd.weight", false);
    rotq_arch_add_tensor(a, ROLE_ATTN_NORM, "model.layers.{L}.input_layernorm.weight", "blk.{L}.attn_norm.weight", false);
    rotq_arch_add_tensor(a, ROLE_Q, "model.layers.{L}.self_attn.q_proj.weight", "blk.{L}.attn_q.weight", false);
    rotq_arch_add_tensor(a, ROLE_K, "model.layers.{L}.self_attn.k_proj.weight", "blk.{L}.attn_k.weight", false);
    rotq_arch_add_tensor(a, ROLE_V, "model.layers.{L}.self_attn.v_proj.weight", "blk.{L}.attn_v.weight", false);
    rotq_arch_add_tensor(a, ROLE_O, "model.layers.{L}.self_attn.o_proj.weight", "blk.{L}.attn_output.weight", false);
    rotq_arch_add_tensor(a, ROLE_Q_BIAS, "model.layers.{L}.self_attn.q_proj.bias", "blk.{L}.attn_q.bias", true);
    rotq_arch_add_tensor(a, ROLE_K_BIAS, "model.layers.{L}.self_attn.k_proj.bias", "blk.{L}.attn_k.bias", true);
    rotq_arch_add_tensor(a, ROLE_V_BIAS, "model.layers.{L}.self_attn.v_proj.bias", "blk.{L}.attn_v.bias", true);
    rotq_arch_add_tensor(a, ROLE_O_BIAS, "model.layers.{L}.self_attn.o_proj.bias", "blk.{L}.attn_output.bias", true);
    rotq_arch_add_tensor(a, ROLE_MLP_NORM, "model.layers.{L}.post_attention_layernorm.weight", "blk.{L}.ffn_norm.weight", false);
    rotq_arch_add_tensor(a, ROLE_GATE, "model.layers.{L}.mlp.gate_proj.weight", "blk.{L}.ffn_gate.weight", false);
    rotq_arch_add_tensor(a, ROLE_UP, "model.layers.{L}.mlp.up_proj.weight", "blk.{L}.ffn_up.weight", false);
    rotq_arch_add_tensor(a, ROLE_DOWN, "model.layers.{L}.mlp.down_proj.weight", "blk.{L}.ffn_down.weight", false);
    rotq_arch_add_tensor(a, ROLE_FINAL_NORM, "model.norm.weight", "output_norm.weight", false);
    rotq_arch_add_tensor(a, ROLE_LM_HEAD, "lm_head.weight", "output.weight", true);

    rotq_arch_add_group(a, ROLE_ATTN_NORM, 3, (rotq_role[]){ROLE_Q, ROLE_K, ROLE_V});
    rotq_arch_add_group(a, ROLE_MLP_NORM, 2, (rotq_role[]){ROLE_GATE, ROLE_UP});
    rotq_arch_add_group(a, ROLE_FINAL_NORM, 1, (rotq_role[]){ROLE_LM_HEAD});
    rotq_arch_set_ops(a, rotq_arch_standard_ops, ROTQ_STANDARD_OPS);
    a->norm = ROTQ_NORM_RMS;
    a->mlp = ROTQ_MLP_SWIGLU;
    rotq_arch_default_keys(&a->keys);
}

/* The QuaRot order: untie before anything changes the embedding; fuse norms before R1. */
const char *const rotq_arch_standard_ops[ROTQ_STANDARD_OPS] = {
    "untie_embeddings", "fuse_norms", "rotate_r1", "rotate_r2", "online_r4", "online_r3",
};

void rotq_arch_llama(rotq_arch *a) {
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "llama");
    const char *hf[] = {"LlamaForCausalLM", "MistralForCausalLM"};
    for (int i = 0; i < 2; i++) snprintf(a->hf_ids[a->n_hf_ids++], sizeof a->hf_ids[0], "%s", hf[i]);
    snprintf(a->gguf_ids[a->n_gguf_ids++], sizeof a->gguf_ids[0], "llama");
    snprintf(a->gguf_write_id, sizeof a->gguf_write_id, "llama");
    snprintf(a->hf_write_id, sizeof a->hf_write_id, "LlamaForCausalLM");
    snprintf(a->hf_model_type, sizeof a->hf_model_type, "llama");
    rotq_arch_llama_like(a);
    a->gguf_permute_qk = true;  /* llama.cpp's converter interleaves Q/K rows for llama */
    a->default_tied = false;
}
