/* cria-nf4.h: 4-bit NormalFloat weights (QLoRA, Dettmers et al. 2023) in the
 * layout of bitsandbytes, with double quantization of the block scales.
 *
 * An NF4 weight is a CriaTensor of dtype CRIA_DTYPE_NF4 whose `nf4` member
 * holds the quantization state; the tensor owns it. The flattened weight is
 * cut into blocks of CRIA_NF4_BLOCK elements:
 *
 *   absmax[b]  = max |x| over block b (in f32; bf16/f16 weights are widened)
 *   code(x)    = the index of the nearest NF4 value to x * (1 / absmax[b]):
 *                the number of midpoints between consecutive NF4 values that
 *                are below it, ties going down (bitsandbytes' decision tree).
 *                A block of zeros scales by 1/0, gives NaN and so code 0.
 *   data[i/2]  = code(x[2i]) << 4 | code(x[2i+1]): the first element in the
 *                high nibble; the odd element past the end quantizes 0.
 *
 * Double quantization: offset = the mean of all absmax (summed in double and
 * rounded once to f32), then the absmax - offset values are quantized in
 * blocks of CRIA_NF4_NESTED_BLOCK with bitsandbytes' signed dynamic 8-bit map
 * (create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)): their
 * own absmax is kept in f32 and each value maps to the nearest of the 256
 * codes by bitsandbytes' binary search (ties to the lower code on the low side,
 * to the pivot on the high side). Dequantization, in f32 as bitsandbytes does:
 *
 *   absmax'[b] = nested_quant_map[absmax_code[b]] * nested_absmax[b / 256] + offset
 *   y[i]       = quant_map[code(i)] * absmax'[i / 64]
 *
 * Where cria and bitsandbytes can differ in the last bit or two: the dynamic
 * map's linspace (torch's float32 linspace is vectorized and its rounding
 * depends on the processor: 44 of the 256 entries differ by 1 or 2 ulp on an
 * AVX-512 machine with torch 1.13; cria uses start + i*step for the first
 * half and end - (steps-1-i)*step for the rest, its scalar definition) and
 * the offset (torch sums in f32 in a backend-defined order). A checkpoint
 * carries both, and cria_nf4_tensor_new takes them as stored.
 *
 * A bitsandbytes / PEFT checkpoint stores a 4-bit linear weight `W` as
 *   W.weight                  u8 [(n + 1) / 2, 1]  the packed codes (`data`)
 *   W.weight.absmax           u8 [n_blocks]        (`absmax`)
 *   W.weight.quant_map        f32 [16]             (`quant_map`)
 *   W.weight.nested_absmax    f32 [n_nested]       (`nested_absmax`)
 *   W.weight.nested_quant_map f32 [256]            (`nested_quant_map`)
 *   W.weight.quant_state.bitsandbytes__nf4  u8: JSON with quant_type "nf4",
 *       blocksize 64, dtype (of the original weight), shape, nested_blocksize
 *       256, nested_dtype "float32" and nested_offset (`offset`).
 * cria keeps the same arrays and sizes, so loading and saving is a copy. */
#pragma once

#include <cria/cria-safetensors.h>
#include <cria/cria-tensor.h>

G_BEGIN_DECLS

#define CRIA_NF4_BLOCK 64
#define CRIA_NF4_NESTED_BLOCK 256

struct _CriaNf4State {
  gint64 n_blocks;        /* ceil (elements / CRIA_NF4_BLOCK) */
  gint64 n_nested;        /* ceil (n_blocks / CRIA_NF4_NESTED_BLOCK); 0 without double quantization */
  guint8 *absmax;         /* n_blocks 8-bit codes of absmax - offset */
  float *nested_absmax;   /* n_nested scales of those codes */
  float offset;           /* the mean absmax, added back */
  float *absmax_f32;      /* instead of the three above, when a checkpoint was saved without double quantization */
  CriaDType source_dtype; /* of the weight that was quantized (f32, bf16, f16) */
  float quant_map[16];
  float nested_quant_map[256];
};

/* The 16 NF4 values, ascending, from -1 to 1 with an exact 0 (index 7). */
const float *cria_nf4_quant_map (void);
/* bitsandbytes' signed dynamic 8-bit map: 256 ascending values in [-1, 1]. */
void cria_nf4_dynamic_map (float map[256]);

/* Quantizes an f32, bf16 or f16 tensor into a new NF4 tensor of the same
 * shape. Fails on a non-finite value, naming `name` and the element. */
CriaTensor *cria_nf4_quantize (const CriaTensor *src, const char *name, GError **error);

/* An NF4 tensor from the parts of a checkpoint (copied), sizes checked
 * against the shape; `name` is for errors. */
CriaTensor *cria_nf4_tensor_new (int n_dims, const gint64 *shape, CriaDType source_dtype, const guint8 *packed,
                                 gsize packed_bytes, const guint8 *absmax, gint64 n_blocks, const float *nested_absmax,
                                 gint64 n_nested, float offset, const float *quant_map, const float *nested_quant_map,
                                 const char *name, GError **error);

/* The 4-bit weight `name` of a bitsandbytes / PEFT checkpoint ("...q_proj.weight"
 * with name.absmax, name.quant_map, name.nested_absmax, name.nested_quant_map
 * and name.quant_state.bitsandbytes__nf4 beside it; the nested ones absent
 * when it was saved without double quantization). Errors name the file, the
 * tensor and the field. */
CriaTensor *cria_nf4_load (CriaSafetensors *st, const char *name, GError **error);

/* An NF4 tensor in a device backend's memory (contract 1.1, cria-backend.h)
 * is one allocation holding what the host tensor holds, at these byte
 * offsets: the packed codes first (`data`, (n + 1) / 2 bytes), then the
 * state's arrays, each 16-byte aligned. Without double quantization
 * (n_nested == 0) `absmax` holds the f32 scales (absmax_f32) and there is no
 * nested_absmax. The resident tensor's `nf4` keeps the scalars and both maps
 * on the host too, its array pointers NULL: kernels read the arrays in device
 * memory. The core uploads NF4 weights only to a device backend that has a
 * dequantize kernel, which must know this layout. */
typedef struct {
  gsize absmax;           /* u8 [n_blocks] codes, or f32 [n_blocks] when n_nested == 0 */
  gsize nested_absmax;    /* f32 [n_nested] */
  gsize quant_map;        /* f32 [16] */
  gsize nested_quant_map; /* f32 [256] */
  gsize bytes;            /* the whole allocation */
} CriaNf4Layout;

void cria_nf4_device_layout (const CriaTensor *tensor, CriaNf4Layout *layout);

/* The scale of block `block` after undoing the double quantization. */
float cria_nf4_block_absmax (const CriaNf4State *state, gint64 block);
/* Elements [start, start + count) of an NF4 tensor, in f32: what kernels
 * call block by block instead of materializing a whole weight. */
void cria_nf4_dequantize_range (const CriaTensor *tensor, gint64 start, gint64 count, float *out);
/* The whole weight as a new f32 tensor. */
CriaTensor *cria_nf4_dequantize (const CriaTensor *tensor);

void cria_nf4_state_free (CriaNf4State *state);

G_END_DECLS
