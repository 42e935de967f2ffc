// A minimal HTTP/1.0 GET over a TCP socket, for tests that talk to exporters and to Prometheus on
// loopback without depending on curl. HTTP/1.0 keeps the reply simple: no chunked encoding, the
// server closes the connection after the body.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <string>

namespace umbra::test {

struct HttpResponse {
  int status = 0;  // 0 when no reply came (connection refused, timeout)
  std::string headers;
  std::string body;
  std::string error;  // why status is 0
};

inline HttpResponse http_get(const std::string& ipv4, int port, const std::string& target,
                             double timeout_s = 5.0) {
  HttpResponse r;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    r.error = "socket() failed";
    return r;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, ipv4.c_str(), &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    r.error = "connect to " + ipv4 + ":" + std::to_string(port) + " failed";
    close(fd);
    return r;
  }
  const std::string request =
      "GET " + target + " HTTP/1.0\r\nHost: " + ipv4 + ":" + std::to_string(port) + "\r\n\r\n";
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    r.error = "send failed";
    close(fd);
    return r;
  }
  std::string raw;
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int>(timeout_s * 1e3));
  char buf[16384];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      r.error = "timed out reading the reply";
      close(fd);
      return r;
    }
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      r.error = "recv failed";
      close(fd);
      return r;
    }
    if (n == 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  const size_t end = raw.find("\r\n\r\n");
  if (raw.compare(0, 5, "HTTP/") != 0 || end == std::string::npos) {
    r.error = "not an HTTP reply: " + raw.substr(0, 100);
    return r;
  }
  r.headers = raw.substr(0, end);
  r.body = raw.substr(end + 4);
  std::sscanf(raw.c_str(), "HTTP/%*s %d", &r.status);
  return r;
}

// Percent-encodes a query-string value (PromQL has braces, quotes, brackets).
inline std::string url_encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof(hex), "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

}  // namespace umbra::test
