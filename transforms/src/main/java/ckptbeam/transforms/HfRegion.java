package ckptbeam.transforms;

import ckptbeam.io.tensor.SourceSlice;

/**
 * One rectangle of an HF tensor (rows {@code [row, row+rows)}, columns {@code [col, col+cols)}) and the slice of a
 * rank-file tensor it is read back from: the unit in which the mcore → HF plan tiles an HF tensor, and in which
 * mcore → mcore composes the two plans.
 */
record HfRegion(long row, long rows, long col, long cols, SourceSlice from) {}
