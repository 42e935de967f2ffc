// A minimal HTTP/1.x server for Prometheus scrapes: GET/HEAD /metrics answers with the text that
// `render` returns; / answers with a link to /metrics; anything else is 404/405.
//
// Why not prometheus-cpp's pull Exposer: it runs on civetweb, whose Debian build creates its
// worker threads with a fixed 100 KB stack. glibc places a process's static TLS on every thread's
// stack, and a binary linking Debian's LibTorch carries ~106 KB of it (libopenblas 60 KB, libglog
// 30 KB, libtorch_cpu 10 KB, ...), so pthread_create fails with EINVAL and the Exposer never
// starts inside `umbra` (tests/monitoring/exporter_test.cc runs in such a binary). Scrapes are
// small and rare (one every few seconds), so one thread with a default-size stack serving one
// connection at a time is all an exporter needs.
//
// One thread accepts and answers connections in turn; a client gets 2 s to send its request and
// to read the reply, so a stalled client delays the next scrape by at most that. Destruction
// wakes the thread and joins it promptly. `render` runs on that thread.
#pragma once

#include <functional>
#include <string>
#include <thread>

namespace umbra {

class MetricsHttpServer {
 public:
  // Binds `host` (an IPv4/IPv6 literal or a resolvable name) at `port` (0: any free port) and
  // starts serving. Throws umbra::Error naming host:port and the system's reason (e.g. "Address
  // already in use") when it cannot listen.
  MetricsHttpServer(const std::string& host, int port, std::function<std::string()> render);
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // The bound port (the one the OS chose when asked for 0).
  int port() const { return port_; }

 private:
  void serve();
  void answer(int connection);

  std::function<std::string()> render_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: written once by the destructor to stop serve()
  int port_ = 0;
  std::thread thread_;
};

}  // namespace umbra
