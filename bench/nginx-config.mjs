// nginx as a plain reverse proxy in front of the bench upstream: the reference most operators
// know. One worker process (the other servers under test have one core), no access log, and
// keep-alive on both sides, as any production reverse proxy is configured:
//   - to the upstream: an `upstream` block with `keepalive`, HTTP/1.1 and an empty Connection
//     header (without these nginx opens a connection per request);
//   - to clients: keepalive_requests raised from its default of 1000, so nginx does not close a
//     load generator's connection every 1000 requests when the Node servers never do.
// Every path nginx writes to is in the bench's temp directory, so it needs no system directory and
// leaves nothing behind (started as root, its worker runs as nginx's default user; the bench's small
// responses never reach the temp paths). Started as `nginx -p DIR -c DIR/nginx.conf -e DIR/error.log -g 'daemon off;'`.

/** The nginx.conf text for a proxy on 127.0.0.1:`port` to `upstreamOrigin`, with its files in `dir`. */
export function nginxConfig({ dir, port, upstreamOrigin }) {
  const upstream = new URL(upstreamOrigin).host;
  return `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;

events {
  worker_connections 4096;
}

http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_timeout 60s;
  keepalive_requests 1000000;

  upstream bench {
    server ${upstream};
    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }

  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://bench;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}

/** The command-line arguments that run nginx in the foreground with that config. */
export function nginxArgs(dir) {
  return ['-p', `${dir}/`, '-c', `${dir}/nginx.conf`, '-e', `${dir}/error.log`, '-g', 'daemon off;'];
}
