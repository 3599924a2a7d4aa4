# dapx: two commands do all the set-up.
#   make run   installs what is missing, builds (Release), runs the main job on the default models
#   make test  installs what is missing, builds, runs every test (ctest)
BUILD ?= build
JOBS  ?= $(shell nproc)
DAPX  := $(BUILD)/apps/dapx
MODELS := models/generated
TARGET := $(MODELS)/target-small
DRAFT  := $(MODELS)/draft-tiny
PROMPT_FILE ?= data/corpus_en.txt
METHOD ?= speckv

.PHONY: all deps build run test sanitize format clean models bench

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# The default pair until a trained pair ships: a random-weight target and draft that share
# the Qwen2 vocabulary (generated once, a few seconds).
$(TARGET)/config.json: | build
	$(DAPX) make-model --arch qwen2 --shape small --seed 1 --out $(TARGET)
$(DRAFT)/config.json: | build
	$(DAPX) make-model --arch qwen2 --shape tiny --seed 2 --out $(DRAFT)
models: $(TARGET)/config.json $(DRAFT)/config.json

# The main job: SpecKV on the default pair (the draft's lookahead picks the target's KV),
# a ~1k-token document prompt, budget 256, JSON result with stats.
run: build models
	$(DAPX) generate --model $(TARGET) --draft $(DRAFT) --method $(METHOD) --budget 256 \
	  --chat --prompt-file $(PROMPT_FILE) --max-new-tokens 32 --json

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
