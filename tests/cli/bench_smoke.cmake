cmake_minimum_required(VERSION 3.19)  # string(JSON)
# dapx bench end to end on the tiny model (also its own draft: same tokenizer): two lengths,
# `full` and a method that runs the draft, one repeat, 4 new tokens. Checks the JSON and CSV
# rows and fields; the SVG only where gnuplot is installed. A second run with an empty PATH
# (no gnuplot, no git) must still write JSON and CSV, warn, and measure --throughput.
#   cmake -DDAPX=... -DMODEL=... -DOUT=... -P bench_smoke.cmake
file(REMOVE_RECURSE ${OUT})

function(fail message)
  message(FATAL_ERROR "${message}")
endfunction()

function(run_bench dir)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    fail("dapx bench failed (${rc}):\n${out}${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
  set(err "${err}" PARENT_SCOPE)
  foreach(file bench.json bench.csv)
    if(NOT EXISTS ${dir}/${file})
      fail("${dir}/${file} was not written:\n${out}${err}")
    endif()
  endforeach()
  file(READ ${dir}/bench.json json)
  set(json "${json}" PARENT_SCOPE)
  file(STRINGS ${dir}/bench.csv csv)
  set(csv "${csv}" PARENT_SCOPE)
endfunction()

# A field of row i that must be a number.
function(expect_number i field)
  string(JSON type ERROR_VARIABLE e TYPE "${json}" rows ${i} ${field})
  if(NOT type STREQUAL "NUMBER")
    string(JSON row GET "${json}" rows ${i})
    fail("row ${i}: ${field} is '${type}', not a number: ${row}")
  endif()
endfunction()

set(run1 ${OUT}/run1)
# budget 48: speckv compresses both prompts (a prompt within the budget is never compressed)
run_bench(${run1} ${DAPX} bench -m ${MODEL} -d ${MODEL} --lengths 64,128 --methods full,speckv
          --budget 48 --repeats 1 --new-tokens 4 --threads 1 --out ${run1})
string(JSON rows LENGTH "${json}" rows)
if(NOT rows EQUAL 4)
  fail("expected 4 rows (2 lengths x 2 methods), got ${rows}")
endif()
set(i 0)
foreach(length 64 128)
  foreach(method full speckv)
    string(JSON m GET "${json}" rows ${i} method)
    string(JSON n GET "${json}" rows ${i} length)
    string(JSON tokens GET "${json}" rows ${i} prompt_tokens)
    if(NOT m STREQUAL method OR NOT n EQUAL length OR NOT tokens EQUAL length)
      fail("row ${i}: expected ${method} at ${length} tokens, got ${m} at ${n} (${tokens} read)")
    endif()
    foreach(field ttft_s tpot_s total_s draft_share peak_rss_bytes working_bytes kv_bytes
            kept_ratio prefill_gflops prefill_of_gemm decode_gbs decode_of_bandwidth
            ttft_ratio tpot_ratio total_ratio rss_ratio working_ratio kv_ratio request_bytes
            tensor_peak_bytes tensor_ratio)
      expect_number(${i} ${field})
    endforeach()
    math(EXPR i "${i} + 1")
  endforeach()
endforeach()
# Working memory is the peak RSS above the weights resident in RAM (speckv's rows count the
# draft's too): never negative, at least the KV cache the request held.
foreach(i RANGE 3)
  expect_number(${i} resident_weight_bytes)
  string(JSON working GET "${json}" rows ${i} working_bytes)
  string(JSON kv GET "${json}" rows ${i} kv_bytes)
  string(JSON peak GET "${json}" rows ${i} peak_rss_bytes)
  string(JSON resident GET "${json}" rows ${i} resident_weight_bytes)
  if(working LESS kv OR NOT kv GREATER 0 OR resident GREATER peak)
    fail("row ${i}: working memory ${working} below its KV bytes ${kv}, or resident weights "
         "${resident} above the peak RSS ${peak}")
  endif()
endforeach()
# full keeps everything: its kept ratio is 1 whatever the cache dtype (bf16 by default)
string(JSON full_kept GET "${json}" rows 0 kept_ratio)
if(NOT full_kept EQUAL 1)
  fail("full at 64 tokens: kept ratio ${full_kept}, expected 1")
endif()
string(JSON draft_s GET "${json}" rows 1 draft_s)
string(JSON kept GET "${json}" rows 1 kept_ratio)
string(JSON budget GET "${json}" rows 1 budget)
if(NOT draft_s GREATER 0 OR NOT kept LESS 1 OR NOT budget EQUAL 48)
  fail("speckv at 64 tokens: draft time ${draft_s} s, kept ratio ${kept}, budget ${budget}")
endif()
# The process floor (a child answering an 8-token prompt): each row's request memory is its
# working memory above it (for this tiny model about 0, so its ratio to full may be empty).
string(JSON floor GET "${json}" floor working_bytes)
string(JSON floor_command GET "${json}" floor command)
string(JSON working GET "${json}" rows 1 working_bytes)
string(JSON request GET "${json}" rows 1 request_bytes)
math(EXPR expected_request "${working} - ${floor}")
if(NOT floor GREATER 0 OR NOT request EQUAL expected_request
   OR NOT floor_command MATCHES "prompt-8.txt --method full --max-new-tokens 1")
  fail("floor ${floor} (${floor_command}), speckv at 64: working ${working}, request ${request}")
endif()
# The run's record: command, commit, machine and its limits (a missing key fails string(JSON)).
string(JSON command GET "${json}" command)
string(JSON commit GET "${json}" git_commit)
string(JSON cpu GET "${json}" machine cpu_model)
string(JSON avx2 TYPE "${json}" machine cpu_flags avx2)
string(JSON threads GET "${json}" machine threads_used)
string(JSON gemm GET "${json}" limits gemm_f32_gflops)
string(JSON bandwidth GET "${json}" limits read_gbs)
if(NOT command MATCHES " bench .*--lengths 64,128" OR NOT avx2 STREQUAL "BOOLEAN"
   OR NOT threads EQUAL 1 OR NOT gemm GREATER 0 OR NOT bandwidth GREATER 0)
  fail("run record incomplete: command '${command}', avx2 ${avx2}, threads ${threads}, "
       "GEMM ${gemm}, read ${bandwidth}")
endif()
list(LENGTH csv lines)
list(GET csv 0 header)
list(GET csv 2 speckv_line)
if(NOT lines EQUAL 5 OR NOT header MATCHES "^method,length,budget,.*ttft_s,tpot_s,.*total_s,.*peak_rss_bytes,.*working_bytes,request_bytes,.*kv_bytes,.*kept_ratio"
   OR NOT speckv_line MATCHES "^speckv,64,")
  fail("bench.csv: expected a header and 4 rows:\n${csv}")
endif()
if(NOT out MATCHES "TTFT s")
  fail("no table on stdout:\n${out}")
endif()
find_program(GNUPLOT gnuplot)
if(GNUPLOT AND NOT EXISTS ${run1}/bench.svg)
  fail("gnuplot is installed but there is no bench.svg:\n${err}")
endif()
# Two lengths: a line per method; the title names the model's folder, not its path.
file(READ ${run1}/bench.gp gp1)
get_filename_component(model_name ${MODEL} NAME)
if(NOT gp1 MATCHES "with linespoints" OR NOT gp1 MATCHES "title 'dapx bench: ${model_name}'"
   OR gp1 MATCHES "${MODEL}")
  fail("bench.gp of two lengths: expected lines and the title 'dapx bench: ${model_name}':\n${gp1}")
endif()

# No gnuplot (and no git) on PATH: a warning, JSON and CSV all the same; --throughput in process.
set(run2 ${OUT}/run2)
run_bench(${run2} ${CMAKE_COMMAND} -E env PATH=/nonexistent
          ${DAPX} bench -m ${MODEL} --lengths 64 --methods full --repeats 1 --new-tokens 4
          --threads 1 --throughput 2 --out ${run2})
if(NOT err MATCHES "warning: gnuplot is not installed" OR EXISTS ${run2}/bench.svg)
  fail("expected a warning about gnuplot and no SVG:\n${err}")
endif()
# One length: a bar per method, no line through one point.
file(READ ${run2}/bench.gp gp2)
if(NOT gp2 MATCHES "set style data histograms" OR NOT gp2 MATCHES "\"full\" " OR
   gp2 MATCHES "linespoints")
  fail("bench.gp of one length: expected bars:\n${gp2}")
endif()
# One length: a bar per method, no line through one point.
file(READ ${run2}/bench.gp gp2)
if(NOT gp2 MATCHES "set style data histograms" OR NOT gp2 MATCHES "\"full\" " OR
   gp2 MATCHES "linespoints")
  fail("bench.gp of one length: expected bars:\n${gp2}")
endif()
string(JSON commit GET "${json}" git_commit)
string(JSON rps GET "${json}" rows 0 requests_per_s)
string(JSON tps GET "${json}" rows 0 tokens_per_s)
if(NOT commit STREQUAL "unknown" OR NOT rps GREATER 0 OR NOT tps GREATER 0)
  fail("run without git: commit '${commit}', throughput ${rps} requests/s, ${tps} tokens/s")
endif()
message(STATUS "bench smoke: ok")
