#include "help.h"

#include <string.h>

static const char general[] =
    "Usage: volt-inspect [OPTIONS] [call]        JSON lines in, JSON lines out\n"
    "       volt-inspect [OPTIONS] --oneshot [-e JSON]...\n"
    "       volt-inspect [OPTIONS] proxy --listen PATH\n"
    "       volt-inspect [OPTIONS] monitor\n"
    "       volt-inspect [OPTIONS] status\n"
    "\n"
    "Talk to volt-broker over its Unix socket: every frame is shown and typed\n"
    "as one JSON object per line (binary as {\"$bin\":\"<base64>\"}).\n"
    "\n"
    "Modes:\n"
    "  call      (default) send each stdin line as a frame, print each frame received\n"
    "  proxy     sit between clients and the broker and print both directions\n"
    "  monitor   print every frame the broker sends or receives (trace)\n"
    "  status    print the broker's status\n"
    "\n"
    "Options:\n"
    "  -s, --socket PATH   the broker's socket (default: $VOLT_BROKER_SOCKET, else\n"
    "                      /run/volt/broker.sock as root, else\n"
    "                      $XDG_RUNTIME_DIR/volt/broker.sock, else\n"
    "                      /tmp/volt-UID/broker.sock)\n"
    "  -t, --timeout MS    connect + answer time for --oneshot, status, monitor (30000)\n"
    "  -n, --name NAME     client name sent in hello (volt-inspect)\n"
    "      --no-hello      do not send hello (type it yourself)\n"
    "  -j, --json          machine-readable output (proxy, monitor, status)\n"
    "  -h, --help          this help; `volt-inspect MODE --help` for a mode\n"
    "  -V, --version       print the version\n"
    "\n"
    "Exit status: 0 ok, 1 an answer had ok:false, 2 usage or bad input,\n"
    "3 cannot connect or the broker went away, 4 timeout.\n"
    "See volt-inspect(1).\n";

static const char call[] =
    "Usage: volt-inspect [OPTIONS] [call]\n"
    "       volt-inspect [OPTIONS] --oneshot [-e JSON]...\n"
    "\n"
    "Connects, sends hello and prints the welcome; then every line on stdin\n"
    "(one JSON object) becomes a frame and every frame received is printed as\n"
    "one JSON line. A line that is not a JSON object with an \"op\" is reported\n"
    "on stderr and not sent. Empty lines and lines starting with # are skipped.\n"
    "\n"
    "Automatic ids: status, ping, request, register, unregister, subscribe,\n"
    "unsubscribe, credential and monitor get \"id\":N after their op when the\n"
    "line has none (N counts from 1, above any id you typed; with --oneshot\n"
    "every op but hello and reply gets one). The id is shown on stderr when you\n"
    "type at a terminal.\n"
    "\n"
    "At end of input, waits for the answers still owed (--wait), then exits.\n"
    "\n"
    "Options:\n"
    "  -w, --wait MS       after end of input, wait this long for answers (30000)\n"
    "  -f, --follow        after end of input, keep printing until the broker closes\n"
    "  -v, --verbose       also print sent frames; prefix lines with > (sent), < (received)\n"
    "      --no-auto-id    never add ids\n"
    "      --raw           send any JSON object as typed (no op check, no ids)\n"
    "\n"
    "--oneshot (-1): read all frames first (from -e arguments, else stdin; a bad\n"
    "one sends nothing), send them, print only the answers to their ids, exit:\n"
    "  0 every answer ok:true   1 an answer ok:false (code and message on stderr)\n"
    "  2 bad input   3 cannot connect / broker gone   4 --timeout ran out\n"
    "  -e, --execute JSON  a frame to send (repeatable; implies --oneshot)\n"
    "\n"
    "Examples:\n"
    "  volt-inspect -e '{\"op\":\"request\",\"command\":\"get-container-stats\",\"payload\":{}}'\n"
    "  printf '{\"op\":\"ping\"}\\n' | volt-inspect\n";

static const char proxy[] =
    "Usage: volt-inspect [--socket BROKER] proxy --listen PATH [--json]\n"
    "\n"
    "Listens on PATH; for every client that connects there, opens a connection\n"
    "to the broker and copies bytes both ways unchanged, printing each frame:\n"
    "  2026-11-28T04:00:00.123Z c1 > {\"op\":\"hello\",...}    client to broker\n"
    "  2026-11-28T04:00:00.124Z c1 < {\"op\":\"welcome\",...}  broker to client\n"
    "  ... c1 + connected (pid, uid, gid)   ... c1 - closed: ...   ... c1 > ! bad frame\n"
    "A frame that does not parse is shown as an error and still forwarded.\n"
    "Point a client at it with VOLT_BROKER_SOCKET=PATH.\n"
    "\n"
    "Options:\n"
    "  -l, --listen PATH   where to listen (a stale socket there is replaced)\n"
    "  -j, --json          one JSON object per line: {\"t\",\"conn\",\"dir\",\"frame\"},\n"
    "                      dir \"to-broker\"/\"to-client\"; errors have \"error\",\n"
    "                      connects and closes have \"event\"\n";

static const char monitor[] =
    "Usage: volt-inspect [OPTIONS] monitor [--json]\n"
    "\n"
    "Sends hello and {\"op\":\"monitor\",\"id\":1}, then prints every trace frame:\n"
    "  <broker time>  c3 -> broker      {\"op\":\"request\",...}\n"
    "  <broker time>  broker -> server  <upstream packet text>\n"
    "Only the broker's own uid and root may monitor (PermissionDenied).\n"
    "\n"
    "Options:\n"
    "  -j, --json          print every frame received as one raw JSON line\n"
    "  -t, --timeout MS    time to wait for the monitor to start (30000)\n";

static const char status[] =
    "Usage: volt-inspect [OPTIONS] status [--json]\n"
    "\n"
    "Prints the broker's status: upstream state and reason, uptime, counters,\n"
    "and a table of clients (pid, uid, name, handlers, subscriptions, queue).\n"
    "\n"
    "Options:\n"
    "  -j, --json          print the status map as one JSON line\n"
    "  -t, --timeout MS    time to wait for the answer (30000)\n";

void help_print(FILE *f, const char *mode)
{
    if (mode && strcmp(mode, "call") == 0)
        fputs(call, f);
    else if (mode && strcmp(mode, "proxy") == 0)
        fputs(proxy, f);
    else if (mode && strcmp(mode, "monitor") == 0)
        fputs(monitor, f);
    else if (mode && strcmp(mode, "status") == 0)
        fputs(status, f);
    else
        fputs(general, f);
}
