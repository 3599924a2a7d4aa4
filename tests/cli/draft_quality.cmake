cmake_policy(VERSION 3.16)  # quoted arguments are never variable names (CMP0054)
# The three shipped drafts on one held-out needle prompt: the default draft's key importance must
# agree with the target's clearly better than the weak draft's, and the attention-distilled
# draft's better than the default's (dapx analyze: Spearman of SpecKV's scores and the overlap
# of the top-k keys). CMD = dapx, MODELS = models/.
set(dir_draft draft)
set(dir_draft_weak draft-weak)
set(dir_draft_distilled draft-distilled)
set(common --tasks niah_single_1 --length 640 --samples 1 --seed 11 --threads 1 --json)
foreach(draft draft draft_weak draft_distilled)
  execute_process(COMMAND ${CMD} analyze -m ${MODELS}/target -d ${MODELS}/${dir_${draft}} ${common}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "dapx analyze with ${draft} failed (${rc}):\n${out}${err}")
  endif()
  string(JSON rho_${draft} GET "${out}" mean speckv_spearman)
  string(JSON overlap_${draft} GET "${out}" mean speckv_topk_overlap)
  message(STATUS "${draft}: Spearman ${rho_${draft}}, top-k overlap ${overlap_${draft}}")
endforeach()
# Measured (2026-12-01): 0.487 / 0.542 (draft), 0.119 / 0.229 (draft-weak), 0.665 / 0.740
# (draft-distilled). Margins leave room for another CPU's rounding, not for the drafts to swap
# places.
if(NOT (rho_draft GREATER rho_draft_weak))
  message(FATAL_ERROR "Spearman: draft ${rho_draft} is not above draft-weak ${rho_draft_weak}")
endif()
if(NOT (overlap_draft GREATER 0.4 AND overlap_draft_weak LESS 0.3))
  message(FATAL_ERROR "top-k overlap: draft ${overlap_draft} (want > 0.4), "
                      "draft-weak ${overlap_draft_weak} (want < 0.3)")
endif()
if(NOT (rho_draft_distilled GREATER 0.55 AND rho_draft_distilled GREATER rho_draft))
  message(FATAL_ERROR "Spearman: draft-distilled ${rho_draft_distilled} is not above 0.55 and "
                      "above draft ${rho_draft}")
endif()
