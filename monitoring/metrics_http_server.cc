#include "monitoring/metrics_http_server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/check.h"
#include "core/log.h"

namespace umbra {

namespace {

constexpr int kClientTimeoutMs = 2000;
constexpr size_t kMaxRequestBytes = 16384;

using Clock = std::chrono::steady_clock;

int ms_left(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Waits until `fd` is ready for `events`, the wake fd fires, or the deadline passes.
bool wait_ready(int fd, short events, int wake_fd, Clock::time_point deadline) {
  for (;;) {
    pollfd fds[2] = {{fd, events, 0}, {wake_fd, POLLIN, 0}};
    const int n = poll(fds, 2, ms_left(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || fds[1].revents != 0) return false;
    return true;
  }
}

std::string response(int status, const char* reason, const std::string& content_type,
                     const std::string& body, bool head) {
  std::string r =
      "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Type: " + content_type +
      "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  if (!head) r += body;
  return r;
}

}  // namespace

MetricsHttpServer::MetricsHttpServer(const std::string& host, int port,
                                     std::function<std::string()> render)
    : render_(std::move(render)) {
  const std::string where =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const int gai = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  UMBRA_CHECK(gai == 0, where, ": cannot resolve the bind address (", gai_strerror(gai), ")");
  std::string failure;
  for (addrinfo* a = found; a != nullptr && listen_fd_ < 0; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      failure = std::strerror(errno);
      continue;
    }
    // SO_REUSEADDR lets a restarted rank rebind while old connections sit in TIME_WAIT; it does
    // not allow two listeners on one port.
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 16) != 0) {
      failure = std::strerror(errno);
      close(fd);
      continue;
    }
    listen_fd_ = fd;
  }
  freeaddrinfo(found);
  UMBRA_CHECK(listen_fd_ >= 0, where, ": ", failure);

  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  UMBRA_CHECK(getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len) == 0, where,
              ": getsockname: ", std::strerror(errno));
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    const int err = errno;
    close(listen_fd_);
    UMBRA_FAIL(where, ": eventfd: ", std::strerror(err));
  }
  thread_ = std::thread([this] { serve(); });
}

MetricsHttpServer::~MetricsHttpServer() {
  const uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof(one)) != sizeof(one))
    spdlog::warn("monitoring: could not wake the metrics server thread: {}", std::strerror(errno));
  thread_.join();
  close(listen_fd_);
  close(wake_fd_);
}

void MetricsHttpServer::serve() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::warn("monitoring: metrics server stopped: poll: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    const int connection = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (connection < 0) continue;  // the client gave up already, or EMFILE: try again next poll
    answer(connection);
    close(connection);
  }
}

void MetricsHttpServer::answer(int connection) {
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(kClientTimeoutMs);
  std::string request;
  while (request.find("\r\n\r\n") == std::string::npos) {
    if (request.size() > kMaxRequestBytes) return;
    if (!wait_ready(connection, POLLIN, wake_fd_, deadline)) return;
    char buf[4096];
    const ssize_t n = recv(connection, buf, sizeof(buf), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return;
    request.append(buf, static_cast<size_t>(n));
  }
  // Request line: METHOD SP TARGET SP HTTP/x.y
  const size_t sp1 = request.find(' ');
  const size_t sp2 = sp1 == std::string::npos ? sp1 : request.find(' ', sp1 + 1);
  std::string reply;
  if (sp2 == std::string::npos) {
    reply = response(400, "Bad Request", "text/plain", "bad request\n", false);
  } else {
    const std::string method = request.substr(0, sp1);
    const std::string target = request.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string path = target.substr(0, target.find('?'));
    const bool head = method == "HEAD";
    if (method != "GET" && !head) {
      reply = response(405, "Method Not Allowed", "text/plain", "only GET and HEAD\n", false);
    } else if (path == "/metrics") {
      try {
        reply = response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", render_(), head);
      } catch (const std::exception& e) {
        spdlog::warn("monitoring: rendering metrics failed: {}", e.what());
        reply = response(500, "Internal Server Error", "text/plain", "see the rank's log\n", head);
      }
    } else if (path == "/") {
      reply = response(200, "OK", "text/html",
                       "<html><body><a href=\"/metrics\">/metrics</a></body></html>\n", head);
    } else {
      reply = response(404, "Not Found", "text/plain", "metrics are at /metrics\n", head);
    }
  }
  size_t sent = 0;
  while (sent < reply.size()) {
    if (!wait_ready(connection, POLLOUT, wake_fd_, deadline)) return;
    const ssize_t n = send(connection, reply.data() + sent, reply.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return;
    sent += static_cast<size_t>(n);
  }
}

}  // namespace umbra
