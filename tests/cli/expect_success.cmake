cmake_policy(VERSION 3.16)  # quoted arguments are never variable names (CMP0054)
# Runs CMD ARGS; passes only if it exits 0 and its output (stdout and stderr) matches the
# regular expression EXPECT.
string(REPLACE ";" " " shown "${ARGS}")
execute_process(COMMAND ${CMD} ${ARGS} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "expected success but exit code was ${rc}: ${CMD} ${shown}\n${out}${err}")
endif()
if(NOT "${out}${err}" MATCHES "${EXPECT}")
  message(FATAL_ERROR "output does not match '${EXPECT}': ${CMD} ${shown}\n${out}${err}")
endif()
