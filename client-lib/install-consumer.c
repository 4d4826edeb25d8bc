/* Built by check-install.sh against the *installed* headers and library
 * (through pkg-config), as an outside program would. */
#include <stdio.h>
#include <string.h>

#include <volt/adapters/libuv.h>
#include <volt/client.h>

int main(void)
{
    struct volt_options opts;
    volt_options_init(&opts);
    opts.socket_path = "/nonexistent/volt-install-check.sock";
    opts.reconnect = 0;
    volt_client *c = volt_client_new(&opts);
    if (!c)
        return 1;
    uv_loop_t loop;
    uv_loop_init(&loop);
    if (volt_libuv_attach(c, &loop) != 0)
        return 1;
    int rc = volt_client_connect(c);
    printf("%s %s %s\n", volt_version(), volt_err_name(rc), volt_client_errstr(c));
    volt_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    return rc == VOLT_E_BROKER_GONE && uv_loop_close(&loop) == 0 ? 0 : 1;
}
