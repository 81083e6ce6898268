// The AMX micro-kernel (kernels/bf16/amx_kernel.h) on the software model of
// the tile instructions (kernels/bf16/amx_model.h): portable, slow, and run
// only when BPFAST_ISA=amx_model asks, so that the AMX kernel's packing and
// tile arithmetic are tested on every CPU.
#include "kernels/bf16/amx_model.h"
#include "kernels/bf16/pair_pack.h"
#include "kernels/kernel_table.h"

namespace bpfast {
namespace {

PairMicroKernel pair_table() {
    return {"amx_model_bf16_32x32", AMX_MR, AMX_NR, PairLayout::rows, AMX_PAIRS, &amx_pair_kernel<TileModel>,
            &pack_pairs_rows<AMX_MR>, &pack_pairs_broadcast<AMX_NR>, &amx_begin<TileModel>};
}

}  // namespace

// The bfloat16 half of the amx_model row of runtime/dispatch.cpp's registry.
extern const IsaKernels amx_model_kernels{nullptr, nullptr, {}, &pair_table};

}  // namespace bpfast
