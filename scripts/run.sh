#!/bin/sh
# run.sh (make run): initialise ./s2.db when missing, then serve it on 127.0.0.1:7411.
# The admin token is printed at init and kept in ./s2.admin-token (mode 0600) so that later
# runs can print it again; delete that file if you would rather not keep it on disk.
#   S2_DB=PATH S2_LISTEN=HOST:PORT make run
set -eu
db=${S2_DB:-s2.db}
listen=${S2_LISTEN:-127.0.0.1:7411}
tokfile=${db%.db}.admin-token
[ "$tokfile" = "$db" ] && tokfile=$db.admin-token

if [ ! -e "$db" ]; then
    umask 077
    ./s2 init --db "$db" --json >"$tokfile.json"
    sed -n 's/.*"admin_token": *"\([^"]*\)".*/\1/p' "$tokfile.json" >"$tokfile"
    rm -f "$tokfile.json"
    umask 022
fi
host=${listen%:*}
port=${listen##*:}
echo "s2: serving $db"
echo "  address:     http://$host:$port"
echo "  dashboard:   http://$host:$port/"
if [ -s "$tokfile" ]; then
    echo "  admin token: $(cat "$tokfile")    (export S2_TOKEN=\$(cat $tokfile))"
else
    echo "  admin token: printed when $db was created (not kept on disk)"
fi
echo "  stop with Ctrl-C"
exec ./s2 serve --db "$db" --listen "$listen"
