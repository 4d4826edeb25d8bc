#!/bin/sh
# The library's man pages never rot: each renders without a groff (or man)
# warning, every exported function and every adapter's attach function is
# in the NAME section of one page (from which the install makes a .so
# alias page per name, so `man volt_call_reply` works), and every name a
# NAME section lists is still a function of the headers.
# Usage: check-man.sh INCLUDE_DIR MAN_DIR
set -eu
inc=$1 man=$2
status=0
pages=$(ls "$man"/libvoltclient.3 "$man"/volt_*.3)
for p in $pages; do
    w=$(groff -ww -z -man "$p" 2>&1 || echo "groff failed")
    if [ -n "$w" ]; then echo "$p: $w" >&2; status=1; fi
    if command -v man >/dev/null; then
        w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$p" 2>&1 >/dev/null || echo "man failed")
        if [ -n "$w" ]; then echo "$p: $w" >&2; status=1; fi
    fi
done
# Names documented: the line after .SH NAME, before " \- ".
documented=$(for p in $pages; do
    awk '/^\.SH NAME/ { getline; sub(/ \\- .*/, ""); gsub(/,/, " "); print; exit }' "$p"
done | tr ' ' '\n' | grep -v '^$' | sort -u)
exported=$( (grep -ho 'VOLT_EXPORT [^(]*(' "$inc/volt/client.h" |
              sed -E 's/.*[ *](volt_[a-z0-9_]+)\($/\1/'
            grep -ho 'static inline int volt_[a-z0-9]*_attach(' "$inc"/volt/adapters/*.h |
              sed -E 's/.* (volt_[a-z0-9_]+)\($/\1/'
            echo volt_options_init) | grep '^volt_[a-z0-9_]*$' | sort -u)
missing=$(printf '%s\n' "$exported" | grep -vxF "$documented" || true)
stale=$(printf '%s\n' "$documented" | grep -v '^libvoltclient$' | grep -vxF "$exported" || true)
if [ -n "$missing" ]; then echo "not in any man page's NAME section:" $missing >&2; status=1; fi
if [ -n "$stale" ]; then echo "in a NAME section but not a function:" $stale >&2; status=1; fi
[ $status = 0 ] && echo "ok: $(echo "$pages" | wc -w) pages, $(echo "$exported" | wc -l) functions documented"
exit $status
