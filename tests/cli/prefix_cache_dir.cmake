cmake_minimum_required(VERSION 3.19)  # string(JSON)
# dapx generate --prefix-cache-dir: the first run writes the prompt's blocks, a second process
# on the same prompt reads them (cached_tokens > 0) and answers the same tokens; a bound of one
# byte (--prefix-cache-dir-bytes 1) keeps no block.
#   cmake -DDAPX=... -DMODEL=... -DOUT=dir -P prefix_cache_dir.cmake
file(REMOVE_RECURSE "${OUT}")
string(REPEAT "the river town keeps a ledger of boats; " 40 prompt)
foreach(run first second)
  execute_process(COMMAND ${DAPX} generate -m ${MODEL} -p "${prompt}" -n 4 --json --threads 1
                          --prefill-chunk 64 --prefix-cache-dir ${OUT}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "the ${run} run failed (${rc}):\n${out}${err}")
  endif()
  string(JSON cached_${run} GET "${out}" stats cached_tokens)
  string(JSON tokens_${run} GET "${out}" tokens)
endforeach()
file(GLOB blocks "${OUT}/*.safetensors")
list(LENGTH blocks n)
if(NOT cached_first EQUAL 0 OR NOT cached_second GREATER 0 OR n EQUAL 0)
  message(FATAL_ERROR "cached tokens: first run ${cached_first}, second ${cached_second}; "
                      "${n} block files in ${OUT}")
endif()
if(NOT tokens_first STREQUAL tokens_second)
  message(FATAL_ERROR "the second run answered ${tokens_second}, the first ${tokens_first}")
endif()
# --prefix-cache-dir-bytes 1: no block fits, so each is deleted after its write; a file that is
# not a block is left alone.
file(WRITE "${OUT}/keep.txt" "not a block")
execute_process(COMMAND ${DAPX} generate -m ${MODEL} -p "${prompt}" -n 4 --json --threads 1
                        --prefill-chunk 64 --prefix-cache-dir ${OUT} --prefix-cache-dir-bytes 1
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
file(GLOB left "${OUT}/*.safetensors")
if(NOT rc EQUAL 0 OR left OR NOT EXISTS "${OUT}/keep.txt")
  message(FATAL_ERROR "--prefix-cache-dir-bytes 1 (exit ${rc}) left '${left}' in ${OUT}:\n${out}${err}")
endif()
message("prefix cache dir: ok (${cached_second} cached tokens, ${n} blocks)")
