/* roots.c: the library. */
#include <math.h>
#include "config.h"
#include "roots.h"

long isqrt(long n) {
    long r = (long)sqrt((double)n);
    while (r * r > n) r--;
    while ((r + 1) * (r + 1) <= n) r++;
    return r;
}

int long_bits(void) { return LONG_BITS; }
