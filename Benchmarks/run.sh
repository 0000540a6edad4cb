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
#
# Unless --only leaves the proxy group out, it also starts three proxies on 127.0.0.1 for it,
# children like nginx and stopped with it: tinyproxy (HTTP CONNECT) on port +2, Dante (SOCKS5)
# on +3 and Squid (CONNECT inside TLS, its certificate from the same throwaway CA) on +4.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
[ -d /opt/swift/usr/bin ] && export PATH="/opt/swift/usr/bin:$PATH"
ips=(127.0.0.11 127.0.0.12 127.0.0.13 127.0.0.14)
port="${HOTPOOL_BENCH_PORT:-18443}"
h2port=$((port + 1))  # the same server with http2 on
host=bench.hotpool.test
tinyproxy_port=$((port + 2)) dante_port=$((port + 3)) squid_port=$((port + 4))

# The proxy group runs unless an --only leaves it out.
proxies=1
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    if [ "${args[i]}" = --only ]; then
        case ",${args[i + 1]:-}," in *,proxy,*) proxies=1 ;; *) proxies=0 ;; esac
    fi
done

# System packages: the peers and the server, and what HotPool itself builds against.
missing=()
for pkg in nginx wrk nghttp2-client openssl strace curl liburing-dev libssl-dev libc-ares-dev libnghttp2-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "$proxies" = 1 ]; then
    # Installing dante-server and squid-openssl also enables their system services (Squid on
    # port 3128); the benchmark runs its own instances with their own configurations.
    for pkg in tinyproxy-bin dante-server squid-openssl; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
fi
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
nginx_pid="" tinyproxy_pid="" dante_pid="" squid_pid=""
cleanup() {
    local pid
    for pid in "$nginx_pid" "$tinyproxy_pid" "$dante_pid" "$squid_pid"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            wait "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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
[proxy]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
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
    # Squid's, for https://127.0.0.1 (the pool checks it against the same CA as nginx's).
    openssl req -new -config openssl.cnf -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout proxy.key -out proxy.csr -subj "/CN=127.0.0.1"
    openssl x509 -req -in proxy.csr -CA ca.pem -CAkey ca.key -set_serial "0x$(openssl rand -hex 8)" -days 2 \
        -extfile openssl.cnf -extensions proxy -out proxy.pem
    chmod 644 proxy.key  # Squid reads it as its own user
) 2>"$work/openssl.log" || { cat "$work/openssl.log" >&2; exit 1; }

# The bodies: 256 bytes and 16 KiB; and 16 KiB of text (words of a dictionary drawn at random,
# as prose compresses: about 3 times by gzip), also gzip-coded for gzip_static to send.
mkdir -p "$work/www" "$work/tmp"
head -c 256 /dev/zero | tr '\0' 'a' >"$work/www/256"
head -c 16384 /dev/zero | tr '\0' 'b' >"$work/www/16k"
python3 -c 'import random, sys
rng = random.Random(1)
words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(2000)]
text = " ".join(rng.choice(words) for _ in range(4000)).encode()[:16384]
sys.stdout.buffer.write(text)' >"$work/www/text16k"
gzip -9 -n -k "$work/www/text16k"
truncate -s 1G "$work/www/1g"  # sparse: the streaming download's 1 GiB costs no disk
chmod 644 "$work/www/"*
mkdir -p "$work/www/upload"
chmod 777 "$work/www/upload"  # nginx's workers write the uploads there, as whichever user they run

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
        gzip_static on;
        location /upload/ {  # the streaming upload: written to a file, then answered
            dav_methods PUT;
            client_max_body_size 0;
        }
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

# wait_listening NAME PID PORT LOG: waits until 127.0.0.1:PORT accepts, or fails showing LOG.
wait_listening() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$3") 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
    done
    echo "run.sh: $1 did not start on 127.0.0.1:$3" >&2
    cat "$4" >&2
    exit 1
}
proxy_args=()
if [ "$proxies" = 1 ]; then
    for p in "$tinyproxy_port" "$dante_port" "$squid_port"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "run.sh: 127.0.0.1:$p is taken; set HOTPOOL_BENCH_PORT so that ports +2 to +4 are free" >&2
            exit 1
        fi
    done
    # tinyproxy: HTTP CONNECT, every port allowed (no ConnectPort line), in the foreground.
    cat >"$work/tinyproxy.conf" <<EOF
Port $tinyproxy_port
Listen 127.0.0.1
Allow 127.0.0.0/8
MaxClients 200
Timeout 600
LogLevel Warning
PidFile "$work/tinyproxy.pid"
EOF
    tinyproxy -d -c "$work/tinyproxy.conf" >"$work/tinyproxy.log" 2>&1 &
    tinyproxy_pid=$!
    # Dante: SOCKS5 without authentication, in the foreground (no -D).
    cat >"$work/danted.conf" <<EOF
logoutput: $work/danted.log
internal: 127.0.0.1 port = $dante_port
external: 127.0.0.1
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
EOF
    danted -f "$work/danted.conf" -p "$work/danted.pid" >>"$work/danted.log" 2>&1 &
    dante_pid=$!
    # Squid: CONNECT inside TLS, no cache, in the foreground (-N), under its own service name
    # (-n) so its shared-memory segments never meet another Squid's; it runs as its own user.
    mkdir -p "$work/squid"
    chmod 777 "$work/squid"
    cat >"$work/squid.conf" <<EOF
https_port 127.0.0.1:$squid_port tls-cert=$work/proxy.pem tls-key=$work/proxy.key
acl bench src 127.0.0.0/8
http_access allow bench
http_access deny all
cache deny all
pid_filename $work/squid/squid.pid
cache_log $work/squid/cache.log
access_log none
cache_store_log none
coredump_dir $work/squid
netdb_filename none
pinger_enable off
shutdown_lifetime 0 seconds
visible_hostname hotpool-bench-proxy
EOF
    squid -N -n "hotpoolbench$$" -f "$work/squid.conf" >"$work/squid/stderr.log" 2>&1 &
    squid_pid=$!
    wait_listening tinyproxy "$tinyproxy_pid" "$tinyproxy_port" "$work/tinyproxy.log"
    wait_listening Dante "$dante_pid" "$dante_port" "$work/danted.log"
    wait_listening Squid "$squid_pid" "$squid_port" "$work/squid/cache.log"
    proxy_args=(--http-proxy "http://127.0.0.1:$tinyproxy_port" --socks5-proxy "socks5://127.0.0.1:$dante_port"
        --https-proxy "https://127.0.0.1:$squid_port")
fi

swift build -c release --package-path "$here"
bin="$(swift build -c release --package-path "$here" --show-bin-path)/HotPoolBench"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
if [ "$proxies" = 1 ]; then
    echo "proxies on 127.0.0.1: tinyproxy $(tinyproxy -v | cut -d' ' -f2) on $tinyproxy_port," \
        "Dante $(danted -v | sed -n 's/^Dante v\([0-9.]*[0-9]\).*/\1/p') on $dante_port," \
        "Squid $(squid -v | head -1 | sed 's/.*Version //') on $squid_port"
fi
echo "nginx $(nginx -v 2>&1 | cut -d/ -f2) on ${ips[*]} port $port, HTTP/2 on $h2port (1 worker), $(h2load --version | head -1), wrk $(wrk -v 2>&1 | head -1 | cut -d' ' -f2), $(openssl version | cut -d' ' -f1-2)"
ips_csv="$(IFS=,; echo "${ips[*]}")"
# HOTPOOL_BENCH_WRAPPER runs the harness under a profiler, e.g. "perf record -e cpu-clock -g".
# shellcheck disable=SC2086
${HOTPOOL_BENCH_WRAPPER:-} "$bin" --ca "$work/ca.pem" --ips "$ips_csv" --port "$port" --http2-port "$h2port" --host "$host" --json "$here/results.json" \
    ${proxy_args[@]+"${proxy_args[@]}"} "$@"
