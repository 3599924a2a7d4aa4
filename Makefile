# dapx: two commands do all the set-up.
#   make run   installs what is missing, builds (Release), runs the main job on the default models
#   make test  installs what is missing, builds, runs every test (ctest)
BUILD ?= build
JOBS  ?= $(shell nproc)
DAPX  := $(BUILD)/apps/dapx
# The trained default pair (dapx train; recipe in models/README.md).
TARGET := models/target
DRAFT  := models/draft
DEMO_LENGTH ?= 1000
DEMO_TASK ?= niah_single_2
# Random-weight models of real shapes for benchmarks, generated on demand (make models).
MODELS := models/generated

.PHONY: all deps build run test sanitize format clean models bench

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# A random-weight Qwen2-family small target and tiny draft sharing the real Qwen2 vocabulary
# (generated once, a few seconds): for speed measurements, not for answers.
$(MODELS)/target-small/config.json: | build
	$(DAPX) make-model --arch qwen2 --shape small --seed 1 --out $(MODELS)/target-small
$(MODELS)/draft-tiny/config.json: | build
	$(DAPX) make-model --arch qwen2 --shape tiny --seed 2 --out $(MODELS)/draft-tiny
models: $(MODELS)/target-small/config.json $(MODELS)/draft-tiny/config.json

# The main job: one held-out long needle prompt (evaluation split) through full, SpecKV and
# SpecKV-PC on the trained pair, side by side: question, expected answer, each method's answer,
# KV kept, TTFT, total time, peak memory.
run: build
	$(DAPX) demo --model $(TARGET) --draft $(DRAFT) --task $(DEMO_TASK) --length $(DEMO_LENGTH) \
	  --budget 128

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# ASan + UBSan over the torch-free libraries (safetensors, config, tokenizer) and their tests.
sanitize: deps
	cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DDAPX_WITH_TORCH=OFF -DDAPX_SANITIZE=ON
	cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && ctest --output-on-failure

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(MODELS)
