/* Usage texts of volt-inspect (the man page says the same at length). */
#ifndef INSPECT_HELP_H
#define INSPECT_HELP_H

#include <stdio.h>

/* Prints the help of a mode ("call", "proxy", "monitor", "status") or,
 * for NULL or an unknown name, of the whole tool. */
void help_print(FILE *f, const char *mode);

#endif
