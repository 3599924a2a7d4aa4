# dapx: two commands do all the set-up.
#   make run   installs what is missing, builds (Release), runs the main job on the default models
#   make test  installs what is missing, builds, runs every test (ctest)
BUILD ?= build
JOBS  ?= $(shell nproc)
DAPX  := $(BUILD)/apps/dapx
# The trained default pair (dapx train; recipe in models/README.md).
TARGET := models/target
DRAFT  := models/draft
DEMO_LENGTH ?= 2048
DEMO_TASK ?= niah_single_1
# Random-weight models of real shapes for benchmarks, generated on demand (make models).
MODELS := models/generated

.PHONY: all deps build run test sanitize fuzz format clean models bench install uninstall

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
	$(DAPX) make-model --arch qwen2 --shape tiny --seed 2 --max-position 32768 --out $(MODELS)/draft-tiny
models: $(MODELS)/target-small/config.json $(MODELS)/draft-tiny/config.json

# Methods against full KV on those models (dapx bench: one process per case, median of 3
# repeats, against the machine's measured GEMM rate and read bandwidth); saved in
# bench/results/DATE-TIME/. BENCH_ARGS adds flags, e.g. BENCH_ARGS="--budget 128 --throughput 4".
BENCH_LENGTHS ?= 4096,8192,16384
BENCH_METHODS ?= full,snapkv,laq,speckv,specpc,speckv-pc
bench: models
	$(DAPX) bench --model $(MODELS)/target-small --draft $(MODELS)/draft-tiny \
	  --lengths $(BENCH_LENGTHS) --methods $(BENCH_METHODS) $(BENCH_ARGS)

# The main job: one held-out long needle prompt (evaluation split) through full, SpecKV and
# SpecKV-PC on the trained pair, side by side: question, expected answer, each method's answer,
# KV kept, TTFT, total time, peak memory.
run: build
	$(DAPX) demo --model $(TARGET) --draft $(DRAFT) --task $(DEMO_TASK) --length $(DEMO_LENGTH) \
	  --budget 128 --methods full,snapkv,speckv,speckv-pc --samples 5

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# make && sudo make install: PREFIX/bin/dapx, its man page (dapx(1)), the default pair and the data
# in PREFIX/share/dapx (the binary finds them relative to itself), the licences in
# PREFIX/share/doc/dapx. The list of installed files is kept as PREFIX/share/dapx/install_manifest.txt
# for make uninstall (same PREFIX).
PREFIX ?= /usr/local
install:
	@test -x $(DAPX) || { echo "dapx: nothing built in $(BUILD)/ yet: run make build, then make install"; exit 1; }
	cmake --build $(BUILD) -j $(JOBS)
	cmake --install $(BUILD) --prefix $(PREFIX)
	cp $(BUILD)/install_manifest.txt $(PREFIX)/share/dapx/install_manifest.txt
	@echo "dapx: installed in $(PREFIX) (make uninstall PREFIX=$(PREFIX) removes it)"

uninstall:
	@test -f $(PREFIX)/share/dapx/install_manifest.txt || { echo "dapx: no dapx installed in $(PREFIX) (no $(PREFIX)/share/dapx/install_manifest.txt); set PREFIX to the one used for make install"; exit 1; }
	xargs -d '\n' rm -f -- < $(PREFIX)/share/dapx/install_manifest.txt
	rm -f $(PREFIX)/share/dapx/install_manifest.txt
	-find $(PREFIX)/share/dapx $(PREFIX)/share/doc/dapx -depth -type d -empty -delete
	@echo "dapx: removed from $(PREFIX)"

# ASan + UBSan over every torch-free library and its tests (io, tokenizer, reference, raw kernels,
# eval tasks, the fuzz corpora replayed, the docs check).
sanitize: deps
	cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DDAPX_WITH_TORCH=OFF -DDAPX_SANITIZE=ON
	cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && ctest --output-on-failure

# libFuzzer (clang, ASan + UBSan) on the torch-free parsers: safetensors + index, config.json,
# tokenizer.json, encode/decode, chat templates, GGUF; FUZZ_SECONDS each. Grows a copy of the
# committed corpora in $(BUILD)-fuzz/corpus (fuzz/corpus is never written); crashing inputs
# land in $(BUILD)-fuzz/artifacts. FUZZ_RUNS > 0 also stops a target after that many
# executions (FUZZ_SECONDS=0 FUZZ_RUNS=1000000: exactly 1M each). See fuzz/README.md.
FUZZ_SECONDS ?= 60
FUZZ_RUNS ?= -1
FUZZ_TARGETS := safetensors model_config tokenizer_json tokenizer_codec chat_template api_request gguf
FUZZ := $(BUILD)-fuzz
fuzz:
	@bash scripts/install-deps.sh --fuzz
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ) -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDAPX_WITH_TORCH=OFF -DDAPX_FUZZ=ON
	cmake --build $(FUZZ) -j $(JOBS) --target fuzz_targets
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ)/corpus/$$t $(FUZZ)/artifacts/$$t && \
	  cp fuzz/corpus/$$t/* $(FUZZ)/corpus/$$t/ && \
	  echo "== fuzz_$$t: $(FUZZ_SECONDS) s" && \
	  $(FUZZ)/fuzz/fuzz_$$t $(FUZZ)/corpus/$$t -dict=fuzz/$$t.dict -max_total_time=$(FUZZ_SECONDS) -runs=$(FUZZ_RUNS) \
	    -timeout=30 -artifact_prefix=$(FUZZ)/artifacts/$$t/ -print_final_stats=1 || exit 1; \
	done

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-fuzz $(MODELS)
