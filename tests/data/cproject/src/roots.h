/* roots.h: integer square roots. */
#ifndef ROOTS_H
#define ROOTS_H
long isqrt(long n);
int long_bits(void);
#endif
