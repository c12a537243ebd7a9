/* log2 over 16,384 random u32 values (64 KiB): too many outcomes for a branch predictor to learn
 * from one run to the next (log2's 1,024 values, the same every run, it mostly learns), so code
 * that keeps log2's branches pays a mispredict on many values. */
#define LOG2_VALUES 16384
#define LOG2_NAME log2_large
#include "log2.c"
