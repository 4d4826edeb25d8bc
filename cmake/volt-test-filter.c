/* Linked into every cmocka test program (volt_unit_test and
 * volt_integration_test): VOLT_TEST_FILTER=glob runs only the tests whose
 * name matches, e.g. VOLT_TEST_FILTER='*timeout*' build/broker/test-router.
 * It is applied before main(), so no test's main() has to ask for it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

__attribute__((constructor)) static void volt_test_filter(void)
{
    const char *filter = getenv("VOLT_TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
}
