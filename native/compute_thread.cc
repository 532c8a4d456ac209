#include "compute_thread.h"

#include <ATen/Parallel.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <future>
#include <mutex>
#include <thread>

namespace torchlet {

namespace {

std::atomic<int> compute_threads{1};

struct Task {
  const std::function<void()>* fn;
  std::promise<void> done;
};

// Never destroyed: the thread outlives static destruction at exit, idle on its condition.
struct Queue {
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<Task*> tasks;
  std::thread::id id;

  Queue() {
    std::thread worker([this] { Loop(); });
    id = worker.get_id();
    worker.detach();
  }

  void Loop() {
    for (;;) {
      Task* task;
      {
        std::unique_lock<std::mutex> lock(mutex);
        ready.wait(lock, [this] { return !tasks.empty(); });
        task = tasks.front();
        tasks.pop_front();
      }
#ifdef _OPENMP
      at::internal::lazy_init_num_threads();
      const int n = compute_threads.load();
      if (omp_get_max_threads() != n) omp_set_num_threads(n);
#endif
      try {
        (*task->fn)();
        task->done.set_value();
      } catch (...) {
        task->done.set_exception(std::current_exception());
      }
    }
  }
};

Queue& TheQueue() {
  static Queue* queue = new Queue();
  return *queue;
}

}  // namespace

void RunOnComputeThread(const std::function<void()>& fn) {
  Queue& q = TheQueue();
  if (std::this_thread::get_id() == q.id) {
    fn();
    return;
  }
  Task task{&fn, {}};
  std::future<void> done = task.done.get_future();
  {
    std::lock_guard<std::mutex> lock(q.mutex);
    q.tasks.push_back(&task);
  }
  q.ready.notify_one();
  done.get();
}

void SetComputeThreads(int n) {
  // ATen's count is what threads it has not seen yet start with (and the size of caffe2's
  // pool, which XNNPACK uses); this thread then drops back to one.
  at::internal::lazy_init_num_threads();
  at::set_num_threads(n);
#ifdef _OPENMP
  omp_set_num_threads(1);
#endif
  compute_threads.store(n);
}

int ComputeThreads() { return compute_threads.load(); }

}  // namespace torchlet
