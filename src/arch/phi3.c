/* Phi-3: fused qkv_proj ([q; k; v] rows) and gate_up_proj ([gate; up] rows). */
#include <stdio.h>
#include <string.h>

#include "arch/builtin.h"

void rotq_arch_phi3(rotq_arch *a) {
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "phi3");
    snprintf(a->hf_ids[a->n_hf_ids++], sizeof a->hf_ids[0], "Phi3ForCausalLM");
    snprintf(a->gguf_ids[a->n_gguf_ids++], sizeof a->gguf_ids[0], "phi3");
    snprintf(a->gguf_write_id, sizeof a->gguf_write_id, "phi3");
    snprintf(a->hf_write_id, sizeof a->hf_write_id, "Phi3ForCausalLM");
    snprintf(a->hf_model_type, sizeof a->hf_model_type, "phi3");
    rotq_arch_add_tensor(a, ROLE_EMBED, "model.embed_tokens.weight", "token_embd.weight", false);
    rotq_arch_add_tensor(a, ROLE_ATTN_NORM, "model.layers.{L}.input_layernorm.weight", "blk.{L}.attn_norm.weight", false);
    rotq_arch_add_tensor(a, ROLE_QKV, "model.layers.{L}.self_attn.qkv_proj.weight", "blk.{L}.attn_qkv.weight", false);
    rotq_arch_add_tensor(a, ROLE_O, "model.layers.{L}.self_attn.o_proj.weight", "blk.{L}.attn_output.weight", false);
    rotq_arch_add_tensor(a, ROLE_MLP_NORM, "model.layers.{L}.post_attention_layernorm.weight", "blk.{L}.ffn_norm.weight", false);
    /* llama.cpp stores Phi-3's fused gate_up as ffn_up with 2*intermediate rows */
    rotq_arch_add_tensor(a, ROLE_GATE_UP, "model.layers.{L}.mlp.gate_up_proj.weight", "blk.{L}.ffn_up.weight", false);
    rotq_arch_add_tensor(a, ROLE_DOWN, "model.layers.{L}.mlp.down_proj.weight", "blk.{L}.ffn_down.weight", false);
    rotq_arch_add_tensor(a, ROLE_FINAL_NORM, "model.norm.weight", "output_norm.weight", false);
    rotq_arch_add_tensor(a, ROLE_LM_HEAD, "lm_head.weight", "output.weight", true);
    rotq_arch_add_group(a, ROLE_ATTN_NORM, 1, (rotq_role[]){ROLE_QKV});
    rotq_arch_add_group(a, ROLE_MLP_NORM, 1, (rotq_role[]){ROLE_GATE_UP});
    rotq_arch_add_group(a, ROLE_FINAL_NORM, 1, (rotq_role[]){ROLE_LM_HEAD});
    rotq_arch_set_ops(a, rotq_arch_standard_ops, ROTQ_STANDARD_OPS);
    a->norm = ROTQ_NORM_RMS;
    a->mlp = ROTQ_MLP_SWIGLU;
    a->gguf_permute_qk = false;
    a->default_tied = false;
    rotq_arch_default_keys(&a->keys);
}
