/* check.c: the library's tests. */
#include <stdio.h>
#include "config.h"
#include "roots.h"

int main(void) {
    static const long cases[][2] = {{0, 0}, {1, 1}, {15, 3}, {16, 4}, {1764, 42}, {1L << 40, 1L << 20}};
    int failed = 0;
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (isqrt(cases[i][0]) != cases[i][1]) {
            printf("isqrt(%ld) = %ld, expected %ld\n", cases[i][0], isqrt(cases[i][0]), cases[i][1]);
            failed = 1;
        }
    }
    if (long_bits() != 8 * (int)sizeof(long)) {
        printf("long_bits() = %d\n", long_bits());
        failed = 1;
    }
    printf("%s\n", failed ? "FAIL" : "ok");
    return failed;
}
