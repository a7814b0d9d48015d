/* Qwen2-VL (Qwen2VLForConditionalGeneration): a Qwen2 language model with multimodal RoPE (M-RoPE:
 * the rotary frequencies split into temporal / height / width sections, each turned by its own
 * position component) plus a vision transformer whose tensors sit under "visual." in the same
 * checkpoint. The loader moves those into a second model (rotq_model.vision) described by
 * "qwen2_vl_vision": LayerNorm blocks with a fused qkv, bidirectional attention with 2-D rotary
 * positions, a quick-GELU MLP, and the patch merger (LayerNorm, then an MLP over merge² neighbouring
 * patches side by side) that writes the language model's embedding stream. */
#include <stdio.h>
#include <string.h>

#include "arch/builtin.h"

void rotq_arch_qwen2_vl(rotq_arch *a) {
    rotq_arch_qwen2(a);
    snprintf(a->name, sizeof a->name, "qwen2_vl");
    a->n_hf_ids = 0;
    snprintf(a->hf_ids[a->n_hf_ids++], sizeof a->hf_ids[0], "Qwen2VLForConditionalGeneration");
    /* llama.cpp splits a VL model into a text GGUF and an mmproj file: rotq writes HF folders only */
    a->n_gguf_ids = 0;
    a->gguf_write_id[0] = 0;
    snprintf(a->hf_write_id, sizeof a->hf_write_id, "Qwen2VLForConditionalGeneration");
    snprintf(a->hf_model_type, sizeof a->hf_model_type, "qwen2_vl");
    snprintf(a->vision, sizeof a->vision, "qwen2_vl_vision");
    snprintf(a->vision_prefix, sizeof a->vision_prefix, "visual.");
}

void rotq_arch_qwen2_vl_vision(rotq_arch *a) {
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "qwen2_vl_vision");
    a->vision_tower = true;
    const char *p = "visual.blocks.{L}.";
    char buf[128];
#define T(role, suffix) (snprintf(buf, sizeof buf, "%s%s", p, suffix), rotq_arch_add_tensor(a, role, buf, "", false))
    rotq_arch_add_tensor(a, ROLE_PATCH_EMBED, "visual.patch_embed.proj.weight", "", false);
    T(ROLE_ATTN_NORM, "norm1.weight");
    T(ROLE_ATTN_NORM_BIAS, "norm1.bias");
    T(ROLE_QKV, "attn.qkv.weight");
    T(ROLE_QKV_BIAS, "attn.qkv.bias");
    T(ROLE_O, "attn.proj.weight");
    T(ROLE_O_BIAS, "attn.proj.bias");
    T(ROLE_MLP_NORM, "norm2.weight");
    T(ROLE_MLP_NORM_BIAS, "norm2.bias");
    T(ROLE_UP, "mlp.fc1.weight");
    T(ROLE_UP_BIAS, "mlp.fc1.bias");
    T(ROLE_DOWN, "mlp.fc2.weight");
    T(ROLE_DOWN_BIAS, "mlp.fc2.bias");
#undef T
    rotq_arch_add_tensor(a, ROLE_FINAL_NORM, "visual.merger.ln_q.weight", "", false);
    rotq_arch_add_tensor(a, ROLE_FINAL_NORM_BIAS, "visual.merger.ln_q.bias", "", false);
    rotq_arch_add_tensor(a, ROLE_MERGER_UP, "visual.merger.mlp.0.weight", "", false);
    rotq_arch_add_tensor(a, ROLE_MERGER_UP_BIAS, "visual.merger.mlp.0.bias", "", false);
    rotq_arch_add_tensor(a, ROLE_MERGER_DOWN, "visual.merger.mlp.2.weight", "", false);
    rotq_arch_add_tensor(a, ROLE_MERGER_DOWN_BIAS, "visual.merger.mlp.2.bias", "", false);
    rotq_arch_add_group(a, ROLE_ATTN_NORM, 1, (rotq_role[]){ROLE_QKV});
    rotq_arch_add_group(a, ROLE_MLP_NORM, 1, (rotq_role[]){ROLE_UP});
    /* the merger reads merge² normed patches side by side: the norm folds into each block of columns */
    rotq_arch_add_group(a, ROLE_FINAL_NORM, 1, (rotq_role[]){ROLE_MERGER_UP});
    static const char *const ops[] = {"fuse_norms", "rotate_r1", "rotate_r2", "online_r4"};
    rotq_arch_set_ops(a, ops, 4);
    a->norm = ROTQ_NORM_LAYER;
    a->mlp = ROTQ_MLP_QUICK_GELU;
    a->pos = ROTQ_POS_ROPE;
    rotq_arch_default_keys(&a->keys);
}

/* Qwen2.5-VL: the same language model (M-RoPE), and a tower with RMSNorms, a gated SiLU MLP with biases,
 * and windowed attention: the patches are regrouped window by window (vision_config's window_size in pixels,
 * windows of merged patches) and every layer not named in fullatt_block_indexes attends within its window. */
void rotq_arch_qwen2_5_vl(rotq_arch *a) {
    rotq_arch_qwen2_vl(a);
    snprintf(a->name, sizeof a->name, "qwen2_5_vl");
    a->n_hf_ids = 0;
    snprintf(a->hf_ids[a->n_hf_ids++], sizeof a->hf_ids[0], "Qwen2_5_VLForConditionalGeneration");
    snprintf(a->hf_write_id, sizeof a->hf_write_id, "Qwen2_5_VLForConditionalGeneration");
    snprintf(a->hf_model_type, sizeof a->hf_model_type, "qwen2_5_vl");
    snprintf(a->vision, sizeof a->vision, "qwen2_5_vl_vision");
}

void rotq_arch_qwen2_5_vl_vision(rotq_arch *a) {
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "qwen2_5_vl_vision");
    a->vision_tower = true;
    const char *p = "visual.blocks.{L}.";
    char buf[128];
#define T(role, suffix) (snprintf(buf, sizeof buf, "%s%s", p, suffix), rotq_arch_add_tensor(a, role, buf, "", false))
    rotq_arch_add_tensor(a, ROLE_PATCH_EMBED, "visual.patch_embed.proj.weight", "", false);
    T(ROLE_ATTN_NORM, "norm1.weight");
    T(ROLE_QKV, "attn.qkv.weight");
    T(ROLE_QKV_BIAS, "attn.qkv.bias");
    T(ROLE_O, "attn.proj.weight");
    T(ROLE_O_BIAS, "attn.proj.bias");
    T(ROLE_MLP_NORM, "norm2.weight");
    T(ROLE_GATE, "mlp.gate_proj.weight");
    T(ROLE_GATE_BIAS, "mlp.gate_proj.bias");
    T(ROLE_UP, "mlp.up_proj.weight");
    T(ROLE_UP_BIAS, "mlp.up_proj.bias");
    T(ROLE_DOWN, "mlp.down_proj.weight");
    T(ROLE_DOWN_BIAS, "mlp.down_proj.bias");
#undef T
    rotq_arch_add_tensor(a, ROLE_FINAL_NORM, "visual.merger.ln_q.weight", "", false);
    rotq_arch_add_tensor(a, ROLE_MERGER_UP, "visual.merger.mlp.0.weight", "", false);
    rotq_arch_add_tensor(a, ROLE_MERGER_UP_BIAS, "visual.merger.mlp.0.bias", "", false);
    rotq_arch_add_tensor(a, ROLE_MERGER_DOWN, "visual.merger.mlp.2.weight", "", false);
    rotq_arch_add_tensor(a, ROLE_MERGER_DOWN_BIAS, "visual.merger.mlp.2.bias", "", false);
    rotq_arch_add_group(a, ROLE_ATTN_NORM, 1, (rotq_role[]){ROLE_QKV});
    rotq_arch_add_group(a, ROLE_MLP_NORM, 2, (rotq_role[]){ROLE_GATE, ROLE_UP});
    rotq_arch_add_group(a, ROLE_FINAL_NORM, 1, (rotq_role[]){ROLE_MERGER_UP});
    static const char *const ops[] = {"fuse_norms", "rotate_r1", "rotate_r2", "online_r4"};
    rotq_arch_set_ops(a, ops, 4);
    a->norm = ROTQ_NORM_RMS;
    a->mlp = ROTQ_MLP_SWIGLU;
    a->pos = ROTQ_POS_ROPE;
    rotq_arch_default_keys(&a->keys);
}
