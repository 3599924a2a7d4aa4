# Writes dapx's man page: help2man over `dapx --help`, with every subcommand's --help as a
# section of its own (help2man alone shows only the top-level help).
#   cmake -DDAPX=path/to/dapx -DHELP2MAN=/usr/bin/help2man -DINCLUDE=apps/dapx.h2m
#         -DOUT=dapx.1 -P scripts/man-page.cmake
cmake_minimum_required(VERSION 3.18)
foreach(var DAPX HELP2MAN INCLUDE OUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "man-page.cmake: -D${var}=... is required")
  endif()
endforeach()

execute_process(COMMAND "${DAPX}" --help OUTPUT_VARIABLE top RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "man-page.cmake: '${DAPX} --help' failed (${rc})")
endif()
# The subcommands are the lines "  name   description" after "Subcommands:".
string(FIND "${top}" "Subcommands:" at)
if(at EQUAL -1)
  message(FATAL_ERROR "man-page.cmake: no 'Subcommands:' in dapx --help")
endif()
string(SUBSTRING "${top}" ${at} -1 listing)
string(REGEX MATCHALL "\n  [a-z][a-z-]*" names "${listing}")

file(READ "${INCLUDE}" roff)
string(APPEND roff "\n[SUBCOMMANDS]\n")
foreach(raw IN LISTS names)
  string(STRIP "${raw}" name)
  execute_process(COMMAND "${DAPX}" ${name} --help OUTPUT_VARIABLE help RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "man-page.cmake: '${DAPX} ${name} --help' failed (${rc})")
  endif()
  # roff: a backslash is written \e; a line starting with '.' or a quote would be a request.
  string(REPLACE "\\" "\\e" help "${help}")
  string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" help "${help}")
  string(APPEND roff ".SS dapx ${name}\n.nf\n${help}.fi\n")
endforeach()
file(WRITE "${OUT}.h2m" "${roff}")
execute_process(
  COMMAND "${HELP2MAN}" --no-info --no-discard-stderr
          --name "draft-based approximate inference of long-context LLMs"
          --include "${OUT}.h2m" --output "${OUT}" "${DAPX}"
  RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "man-page.cmake: help2man failed (${rc}): ${err}")
endif()
