{
  "targets": [
    {
      "target_name": "torchlet",
      "sources": [
        "native/addon.cc",
        "native/compute_thread.cc",
        "native/attention.cc",
        "native/errors.cc",
        "native/spec.cc",
        "native/layers.cc",
        "native/linear.cc",
        "native/model.cc",
        "native/dataset.cc",
        "native/augment.cc",
        "native/onecycle.cc",
        "native/schedule.cc",
        "native/optim.cc",
        "native/sgd_step.cc",
        "native/ensemble.cc",
        "native/trainer.cc",
        "native/state_dict.cc",
        "native/files.cc",
        "native/pickle_compat.cc",
        "native/dropout.cc",
        "native/batchnorm_act.cc",
        "native/conv_crop.cc",
        "native/cpu_kernels.cc",
        "native/inference.cc",
        "native/inflate.cc"
      ],
      "include_dirs": [
        "<!@(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node scripts/libtorch.mjs include)"
      ],
      "libraries": ["<!@(node scripts/libtorch.mjs ldflags)"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "<!@(node -p \"process.env.TORCHLET_SANITIZE ? '' : '-fopenmp'\")", "-Wall", "-Wno-unused-parameter", "-Wno-deprecated-declarations", "<!@(node -p \"process.env.TORCHLET_SANITIZE ? '-fsanitize=address -fno-omit-frame-pointer' : ''\")"],
      "ldflags": ["<!@(node -p \"process.env.TORCHLET_SANITIZE ? '-fsanitize=address' : ''\")"]
    }
  ]
}
