cmake_policy(VERSION 3.16)
# The shipped pair through dapx convert: as BF16 and Q8_0 GGUF files, and from the Q8_0 file back
# to an HF directory, it answers the held-out needle prompt as the HF pair does (full KV and
# SpecKV-PC at 20% of the KV); the BF16 files give the HF pair's table rows exactly.
#   cmake -DDAPX=... -DMODELS=.../models -DOUT=dir -P gguf_pair.cmake
file(REMOVE_RECURSE "${OUT}")
file(MAKE_DIRECTORY "${OUT}")
function(run)
  execute_process(COMMAND ${DAPX} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  string(REPLACE ";" " " shown "${ARGN}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): dapx ${shown}\n${out}${err}")
  endif()
  set(output "${out}" PARENT_SCOPE)
endfunction()
set(demo --task niah_single_1 --length 640 --budget 128 --methods full,speckv-pc --seed 11
    --samples 1 --threads 1)
set(answer "full +6874424\\. +yes +100% of KV +2013 .*speckv-pc +6874424\\. +yes +24% of KV +483 ")

run(convert --from ${MODELS}/target --to ${OUT}/target.gguf --type bf16)
run(convert --from ${MODELS}/draft --to ${OUT}/draft.gguf --type bf16)
run(convert --from ${MODELS}/target --to ${OUT}/target-q8.gguf --type q8_0)
run(convert --from ${MODELS}/draft --to ${OUT}/draft-q8.gguf --type q8_0)
run(convert --from ${OUT}/target-q8.gguf --to ${OUT}/target-q8-hf --type bf16)

foreach(pair "${MODELS}/target;${MODELS}/draft" "${OUT}/target.gguf;${OUT}/draft.gguf"
        "${OUT}/target-q8.gguf;${OUT}/draft-q8.gguf" "${OUT}/target-q8-hf;${OUT}/draft.gguf")
  list(GET pair 0 t)
  list(GET pair 1 d)
  run(demo -m ${t} -d ${d} ${demo})
  if(NOT output MATCHES "${answer}")
    message(FATAL_ERROR "the pair ${t} + ${d} does not answer as the HF pair:\n${output}")
  endif()
  # The table rows without the timing and memory columns.
  string(REGEX MATCHALL "(full|speckv-pc) +[^\n]*% of KV +[0-9]+" rows "${output}")
  if(t STREQUAL "${MODELS}/target")
    set(hf_rows "${rows}")
  elseif(t STREQUAL "${OUT}/target.gguf" AND NOT rows STREQUAL hf_rows)
    message(FATAL_ERROR "the BF16 GGUF pair differs from the HF pair: ${rows} vs ${hf_rows}")
  endif()
endforeach()
message("gguf pair: ok")
