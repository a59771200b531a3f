#include "runtime/collectives/communicator.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "runtime/backends/backend.h"
#include "runtime/collectives/gloo_communicator.h"
#include "runtime/core/error.h"

namespace bmsys::rt {

std::shared_ptr<Communicator> Communicator::group(const std::string& name, const std::vector<int>& members) {
  if (members.size() == 1 && members[0] == rank()) return std::make_shared<SingleRankCommunicator>();
  fail("rank {}: the {} communicator cannot form the group '{}' of {} ranks", rank(), this->name(), name,
       members.size());
}

void Communicator::send(const void*, size_t, int peer, uint64_t) {
  fail("rank {}: the {} communicator cannot send to rank {} (point-to-point needs Gloo or NCCL)", rank(),
       name(), peer);
}

void Communicator::recv(void*, size_t, int peer, uint64_t) {
  fail("rank {}: the {} communicator cannot receive from rank {} (point-to-point needs Gloo or NCCL)", rank(),
       name(), peer);
}

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// --- File store ------------------------------------------------------------------

namespace {

std::string key_file(const std::string& key) {
  std::string s;
  for (char c : key) s += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-') ? c : '_';
  return s + ".key";
}

class FileStore final : public RendezvousStore {
 public:
  explicit FileStore(std::string dir) : dir_(std::move(dir)) {
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (!fs::is_directory(dir_)) fail("{}: cannot create the rendezvous directory", dir_);
  }
  void set(const std::string& key, const std::vector<char>& value) override {
    std::string path = dir_ + "/" + key_file(key);
    // Unique per process and thread: tests run ranks as threads of one process.
    std::string tmp = fmt::format("{}.tmp-{}-{}", path, ::getpid(),
                                  std::hash<std::thread::id>{}(std::this_thread::get_id()));
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out.write(value.data(), static_cast<std::streamsize>(value.size()));
      if (!out) fail("{}: write failed", tmp);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("{}: rename failed", path);
  }
  bool check(const std::string& key) override { return fs::exists(dir_ + "/" + key_file(key)); }
  std::vector<char> get(const std::string& key, std::chrono::milliseconds timeout) override {
    auto deadline = Clock::now() + timeout;
    std::string path = dir_ + "/" + key_file(key);
    while (!fs::exists(path)) {
      if (Clock::now() > deadline)
        fail("rendezvous: key '{}' did not appear in {} within {:.1f}s (did every rank start?)", key,
             dir_, std::chrono::duration<double>(timeout).count());
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::ifstream in(path, std::ios::binary);
    return std::vector<char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

 private:
  std::string dir_;
};

// --- TCP store ---------------------------------------------------------------------
// Requests: op (1 byte: 'S' set, 'G' get-if-present, 'C' check), u32 key length, key,
// and for 'S' u32 value length, value. Replies: 'S' -> 1 byte; 'C' -> 1 byte (0/1);
// 'G' -> 1 byte present, then u32 length + value when present.

bool write_all(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n) {
    ssize_t k = ::send(fd, c, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    c += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

bool read_all(int fd, void* p, size_t n) {
  char* c = static_cast<char*>(p);
  while (n) {
    ssize_t k = ::recv(fd, c, n, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    c += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

bool read_blob(int fd, std::string& s) {
  uint32_t n = 0;
  if (!read_all(fd, &n, 4) || n > (64u << 20)) return false;
  s.resize(n);
  return read_all(fd, s.data(), n);
}

bool write_blob(int fd, const char* p, size_t n) {
  uint32_t len = static_cast<uint32_t>(n);
  return write_all(fd, &len, 4) && write_all(fd, p, n);
}

sockaddr_in resolve(const std::string& addr, int port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, addr.c_str(), &sa.sin_addr) == 1) return sa;
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_INET;
  if (::getaddrinfo(addr.c_str(), nullptr, &hints, &res) != 0 || !res)
    fail("MASTER_ADDR '{}': cannot resolve the address", addr);
  sa.sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
  ::freeaddrinfo(res);
  return sa;
}

class TcpStoreServer {
 public:
  TcpStoreServer(const std::string& addr, int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) fail("rendezvous: socket(): {}", std::strerror(errno));
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa = resolve(addr, port);
    // A loopback master listens on loopback; any other address on all interfaces.
    if ((ntohl(sa.sin_addr.s_addr) >> 24) != 127) sa.sin_addr.s_addr = htonl(INADDR_ANY);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd_, 128) != 0) {
      int err = errno;
      ::close(fd_);
      fail("rendezvous: cannot listen on {}:{} (MASTER_ADDR/MASTER_PORT): {}", addr, port, std::strerror(err));
    }
    thread_ = std::thread([this] { serve(); });
  }
  ~TcpStoreServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
    for (auto& t : clients_) t.detach();
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      clients_.emplace_back([this, c] { client(c); });
    }
  }
  void client(int c) {
    for (;;) {
      char op = 0;
      std::string key, value;
      if (!read_all(c, &op, 1) || !read_blob(c, key)) break;
      bool ok = true;
      if (op == 'S') {
        if (!read_blob(c, value)) break;
        {
          std::lock_guard<std::mutex> g(mu_);
          kv_[key] = value;
        }
        char r = 1;
        ok = write_all(c, &r, 1);
      } else if (op == 'C' || op == 'G') {
        std::string v;
        char present = 0;
        {
          std::lock_guard<std::mutex> g(mu_);
          auto it = kv_.find(key);
          if (it != kv_.end()) {
            present = 1;
            v = it->second;
          }
        }
        ok = write_all(c, &present, 1);
        if (ok && op == 'G' && present) ok = write_blob(c, v.data(), v.size());
      } else {
        break;
      }
      if (!ok) break;
    }
    ::close(c);
  }

  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::thread> clients_;
  std::mutex mu_;
  std::map<std::string, std::string> kv_;
};

class TcpStore final : public RendezvousStore {
 public:
  TcpStore(const std::string& addr, int port, bool serve, std::chrono::milliseconds timeout)
      : addr_(addr), port_(port) {
    if (serve) server_ = std::make_unique<TcpStoreServer>(addr, port);
    sockaddr_in sa = resolve(addr, port);
    auto deadline = Clock::now() + timeout;
    for (;;) {
      fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) break;
      int err = errno;
      ::close(fd_);
      fd_ = -1;
      if (Clock::now() > deadline)
        fail("rendezvous: cannot connect to the store of rank 0 at {}:{} within {:.1f}s: {}", addr, port,
             std::chrono::duration<double>(timeout).count(), std::strerror(err));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~TcpStore() override {
    if (fd_ >= 0) ::close(fd_);
  }
  void set(const std::string& key, const std::vector<char>& value) override {
    std::lock_guard<std::mutex> g(mu_);
    char op = 'S', r = 0;
    if (!write_all(fd_, &op, 1) || !write_blob(fd_, key.data(), key.size()) ||
        !write_blob(fd_, value.data(), value.size()) || !read_all(fd_, &r, 1))
      lost();
  }
  bool check(const std::string& key) override {
    std::lock_guard<std::mutex> g(mu_);
    char op = 'C', r = 0;
    if (!write_all(fd_, &op, 1) || !write_blob(fd_, key.data(), key.size()) || !read_all(fd_, &r, 1)) lost();
    return r != 0;
  }
  std::vector<char> get(const std::string& key, std::chrono::milliseconds timeout) override {
    auto deadline = Clock::now() + timeout;
    for (;;) {
      {
        std::lock_guard<std::mutex> g(mu_);
        char op = 'G', present = 0;
        if (!write_all(fd_, &op, 1) || !write_blob(fd_, key.data(), key.size()) || !read_all(fd_, &present, 1))
          lost();
        if (present) {
          std::string v;
          if (!read_blob(fd_, v)) lost();
          return std::vector<char>(v.begin(), v.end());
        }
      }
      if (Clock::now() > deadline)
        fail("rendezvous: key '{}' was not set in the store at {}:{} within {:.1f}s (did every rank start?)",
             key, addr_, port_, std::chrono::duration<double>(timeout).count());
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

 private:
  [[noreturn]] void lost() {
    fail("rendezvous: lost the connection to the store of rank 0 at {}:{} (rank 0 exited?)", addr_, port_);
  }
  std::string addr_;
  int port_;
  std::unique_ptr<TcpStoreServer> server_;
  int fd_ = -1;
  std::mutex mu_;
};

int env_int(const char* name, int dflt, int min) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < min || x > 1'000'000) fail("environment variable {}='{}' is not an integer >= {}", name, v, min);
  return static_cast<int>(x);
}

}  // namespace

std::unique_ptr<RendezvousStore> make_file_store(const std::string& dir) {
  return std::make_unique<FileStore>(dir);
}

std::unique_ptr<RendezvousStore> make_tcp_store(const std::string& addr, int port, bool serve,
                                                std::chrono::milliseconds timeout) {
  return std::make_unique<TcpStore>(addr, port, serve, timeout);
}

DistributedEnv distributed_env_from_environment(double timeout_s) {
  DistributedEnv e;
  e.timeout_s = timeout_s;
  e.world_size = env_int("WORLD_SIZE", 1, 1);
  e.rank = env_int("RANK", 0, 0);
  e.local_rank = env_int("LOCAL_RANK", e.rank, 0);
  e.local_world_size = env_int("LOCAL_WORLD_SIZE", e.world_size, 1);
  if (e.rank >= e.world_size)
    fail("environment: RANK={} is not below WORLD_SIZE={}", e.rank, e.world_size);
  if (const char* d = std::getenv("BMSYS_STORE_DIR")) e.store_dir = d;
  if (const char* a = std::getenv("MASTER_ADDR")) e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", 0, 0);
  if (e.world_size > 1 && e.store_dir.empty() && (e.master_addr.empty() || e.master_port <= 0 || e.master_port > 65535))
    fail("environment: WORLD_SIZE={} needs MASTER_ADDR and MASTER_PORT (1..65535) for the rendezvous "
         "(or use bmsys-run ... --nproc N)",
         e.world_size);
  return e;
}

std::shared_ptr<Communicator> create_communicator(const DistributedEnv& env, Backend& backend) {
  if (env.world_size <= 1) return std::make_shared<SingleRankCommunicator>();
  auto timeout = std::chrono::milliseconds(static_cast<int64_t>(env.timeout_s * 1000));
  std::shared_ptr<RendezvousStore> store =
      env.store_dir.empty() ? std::shared_ptr<RendezvousStore>(
                                  make_tcp_store(env.master_addr, env.master_port, env.rank == 0, timeout))
                            : std::shared_ptr<RendezvousStore>(make_file_store(env.store_dir));
  if (auto own = backend.create_communicator(env, store)) return own;
  return make_gloo_communicator(env, store);
}

}  // namespace bmsys::rt
