/* main.c: prints the integer square root of its argument. */
#include <stdio.h>
#include <stdlib.h>
#include "roots.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: roots N\n");
        return 2;
    }
    printf("%ld\n", isqrt(strtol(argv[1], NULL, 10)));
    return 0;
}
