cmake_policy(VERSION 3.16)  # quoted arguments are never variable names (CMP0054)
# The three shipped drafts on one held-out needle prompt: the default draft (attention-distilled
# from the target) must rank the prompt's keys like the target clearly better than the plain one
# (trained on the tasks alone), and the plain one better than the weak one (dapx analyze:
# Spearman of SpecKV's scores and the overlap of the top-k keys). CMD = dapx, MODELS = models/.
set(dir_draft draft)
set(dir_draft_plain draft-plain)
set(dir_draft_weak draft-weak)
set(common --tasks niah_single_1 --length 640 --samples 1 --seed 11 --threads 1 --json)
foreach(draft draft draft_plain draft_weak)
  execute_process(COMMAND ${CMD} analyze -m ${MODELS}/target -d ${MODELS}/${dir_${draft}} ${common}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "dapx analyze with ${draft} failed (${rc}):\n${out}${err}")
  endif()
  string(JSON rho_${draft} GET "${out}" mean speckv_spearman)
  string(JSON overlap_${draft} GET "${out}" mean speckv_topk_overlap)
  message(STATUS "${draft}: Spearman ${rho_${draft}}, top-k overlap ${overlap_${draft}}")
endforeach()
# Measured (2026-12-01): 0.665 / 0.740 (draft), 0.487 / 0.542 (draft-plain), 0.119 / 0.229
# (draft-weak). Margins leave room for another CPU's rounding, not for the drafts to swap places.
if(NOT (rho_draft GREATER 0.55 AND rho_draft GREATER rho_draft_plain))
  message(FATAL_ERROR "Spearman: draft ${rho_draft} is not above 0.55 and above draft-plain "
                      "${rho_draft_plain}")
endif()
if(NOT (rho_draft_plain GREATER rho_draft_weak))
  message(FATAL_ERROR "Spearman: draft-plain ${rho_draft_plain} is not above draft-weak "
                      "${rho_draft_weak}")
endif()
if(NOT (overlap_draft_plain GREATER 0.4 AND overlap_draft_weak LESS 0.3))
  message(FATAL_ERROR "top-k overlap: draft-plain ${overlap_draft_plain} (want > 0.4), "
                      "draft-weak ${overlap_draft_weak} (want < 0.3)")
endif()
