// The one thread that runs libtorch's multi-threaded work.
//
// libgomp gives every thread that opens a parallel region a team of its own, and its idle
// workers stay. Once a process holds more OpenMP threads than cores, libgomp stops spinning
// between regions (its "throttled" spin count), so every region of every step wakes its
// workers through the kernel. Training on whichever libuv thread an epoch landed on, beside
// a main thread that had opened regions too, put torchlet there: resnet18 made ~870 context
// switches a step, and PyTorch given one idle extra team slowed from 75 to 100-110 ms a step
// with the same count. So the multi-threaded work (training epochs, evaluation, passes over
// more than kSmallPassRows rows) runs here, on one thread with the configured thread count,
// and every other thread runs libtorch with one thread: the process holds one team.
#pragma once

#include <functional>

namespace torchlet {

// Runs fn on the compute thread and waits for it, rethrowing what it throws. Tasks run one
// at a time, in order. Called on the compute thread itself, it runs fn in place.
void RunOnComputeThread(const std::function<void()>& fn);

// The intra-op thread count of the compute thread (setNumThreads). Setting it also makes the
// calling thread (the JS thread) run libtorch with one thread.
void SetComputeThreads(int n);
int ComputeThreads();

}  // namespace torchlet
