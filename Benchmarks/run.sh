#!/usr/bin/env bash
# HotPool benchmarks, in one command: installs nginx, wrk, h2load and openssl if missing, makes a
# throwaway CA and server certificate, starts nginx (foreground, as a child) over TLS on
# several loopback IPs, builds the harness in release mode, runs every scenario, stops nginx,
# prints the table and writes Benchmarks/results.json.
#
#   Benchmarks/run.sh            # full: 5 runs of each scenario, 5 s timed runs
#   Benchmarks/run.sh --quick    # every scenario once, briefly (CI: the harness builds and runs)
#
# Other arguments go to the harness (--runs N, --duration S, --only GROUP,...; see its usage).
# The listen port is HOTPOOL_BENCH_PORT (default 18443); HOTPOOL_BENCH_WRAPPER, if set, is put
# in front of the harness's command line (a profiler).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
[ -d /opt/swift/usr/bin ] && export PATH="/opt/swift/usr/bin:$PATH"
ips=(127.0.0.11 127.0.0.12 127.0.0.13 127.0.0.14)
port="${HOTPOOL_BENCH_PORT:-18443}"
h2port=$((port + 1))  # the same server with http2 on
host=bench.hotpool.test

# System packages: the peers and the server, and what HotPool itself builds against.
missing=()
for pkg in nginx wrk nghttp2-client openssl strace liburing-dev libssl-dev libc-ares-dev libnghttp2-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 10,000 idle connections need as many fds, in this process and in nginx.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fd_limit="$(ulimit -n)"
if [ "$fd_limit" != unlimited ] && [ "$fd_limit" -lt 10500 ]; then
    echo "run.sh: the open-file limit is $fd_limit; the destruction scenario needs at least 10500" >&2
    exit 1
fi
[ "$fd_limit" = unlimited ] && fd_limit=65536

work="$(mktemp -d /tmp/hotpool-bench.XXXXXX)"
chmod 755 "$work"  # nginx's worker runs as another user and reads www/
nginx_pid=""
cleanup() {
    if [ -n "$nginx_pid" ] && kill -0 "$nginx_pid" 2>/dev/null; then
        kill -TERM "$nginx_pid"
        wait "$nginx_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# A throwaway CA and a server certificate (EC P-256) for the host name and every listen IP.
sans="DNS:$host"
for ip in "${ips[@]}"; do sans+=",IP:$ip"; done
cat >"$work/openssl.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = HotPool benchmark
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $sans
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
(
    cd "$work"
    openssl req -x509 -config openssl.cnf -extensions ca -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout ca.key -out ca.pem -days 2 -subj "/CN=HotPool benchmark CA"
    openssl req -new -config openssl.cnf -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout server.key -out server.csr -subj "/CN=$host"
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial "0x$(openssl rand -hex 8)" -days 2 \
        -extfile openssl.cnf -extensions server -out server.pem
) 2>"$work/openssl.log" || { cat "$work/openssl.log" >&2; exit 1; }

# The bodies: 256 bytes and 16 KiB.
mkdir -p "$work/www" "$work/tmp"
head -c 256 /dev/zero | tr '\0' 'a' >"$work/www/256"
head -c 16384 /dev/zero | tr '\0' 'b' >"$work/www/16k"
chmod 644 "$work/www/"*

listens=""
for ip in "${ips[@]}"; do
    listens+="        listen $ip:$port ssl backlog=4096;"$'\n'
    listens+="        listen $ip:$h2port ssl http2 backlog=4096;"$'\n'
done
cat >"$work/nginx.conf" <<EOF
daemon off;
worker_processes 1;
worker_rlimit_nofile $fd_limit;
pid $work/nginx.pid;
error_log $work/error.log warn;
events {
    worker_connections $((fd_limit - 100));
    multi_accept on;
}
http {
    access_log off;
    keepalive_timeout 600s;
    keepalive_requests 1000000000;
    client_body_temp_path $work/tmp/body;
    proxy_temp_path $work/tmp/proxy;
    fastcgi_temp_path $work/tmp/fastcgi;
    uwsgi_temp_path $work/tmp/uwsgi;
    scgi_temp_path $work/tmp/scgi;
    default_type application/octet-stream;
    open_file_cache max=16 inactive=600s;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate $work/server.pem;
    ssl_certificate_key $work/server.key;
    server {
$listens
        server_name $host;
        root $work/www;
    }
}
EOF
nginx -p "$work" -c "$work/nginx.conf" -e "$work/error.log" &
nginx_pid=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/${ips[-1]}/$port") 2>/dev/null && break
    kill -0 "$nginx_pid" 2>/dev/null || { cat "$work/error.log" >&2; exit 1; }
    sleep 0.1
done
verified="$(openssl s_client -connect "${ips[0]}:$port" -servername "$host" -CAfile "$work/ca.pem" \
    -verify_return_error </dev/null 2>&1 | grep -c 'Verify return code: 0 (ok)' || true)"
[ "$verified" -ge 1 ] || { echo "run.sh: nginx's certificate does not verify" >&2; exit 1; }

swift build -c release --package-path "$here"
bin="$(swift build -c release --package-path "$here" --show-bin-path)/HotPoolBench"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "nginx $(nginx -v 2>&1 | cut -d/ -f2) on ${ips[*]} port $port, HTTP/2 on $h2port (1 worker), $(h2load --version | head -1), wrk $(wrk -v 2>&1 | head -1 | cut -d' ' -f2), $(openssl version | cut -d' ' -f1-2)"
ips_csv="$(IFS=,; echo "${ips[*]}")"
# HOTPOOL_BENCH_WRAPPER runs the harness under a profiler, e.g. "perf record -e cpu-clock -g".
# shellcheck disable=SC2086
${HOTPOOL_BENCH_WRAPPER:-} "$bin" --ca "$work/ca.pem" --ips "$ips_csv" --port "$port" --http2-port "$h2port" --host "$host" --json "$here/results.json" "$@"
