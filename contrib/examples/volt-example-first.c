#include <signal.h>
#include <stdio.h>
#include <volt/client.h>

static volt_client *client;

static void on_list_files(volt_client *c, volt_call *call, void *priv)
{
    /* Answer exactly once: now, or later from a timer or a worker thread. */
    volt_call_reply_json(call, "[\"a.txt\",\"b.txt\"]");
}

static void on_signal(int sig)
{
    volt_client_stop(client); /* makes volt_client_run() return */
}

int main(void)
{
    /* The socket: $VOLT_BROKER_SOCKET, else a broker of your own user's,
     * else the system broker's /run/volt/broker.sock. */
    client = volt_client_new(NULL);
    if (!client)
        return 1;
    volt_register_handler(client, "list-files", on_list_files, NULL);

    /* Like the seed's `await connect()`: returns once the broker's session
     * to the VOLT server is ready, or with the reason it is not. */
    int rc = volt_client_connect_blocking(client, 20000);
    if (rc < 0) {
        fprintf(stderr, "connect: %s: %s\n", volt_err_name(rc), volt_client_errstr(client));
        return 1;
    }

    volt_result *r = NULL;
    rc = volt_send_command_json_sync(client, "status", NULL, 0, &r); /* 0: broker's timeout */
    if (rc == 0)
        printf("status: %s\n", r->json);
    else /* SOCKET_NOT_READY, COMMAND_TIMEOUT, COMMAND_REJECTED (r->server_code), ... */
        fprintf(stderr, "status: %s: %s\n", volt_err_name(rc),
                r ? r->message : volt_client_errstr(client));
    fflush(stdout);
    volt_result_free(r);

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    rc = volt_client_run(client); /* serve calls until a signal */
    volt_client_free(client);
    return rc < 0;
}
