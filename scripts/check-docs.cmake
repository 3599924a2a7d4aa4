# Documentation check, run by `make test` (ctest: docs.links_and_methods) or by hand:
#   cmake -DROOT=/path/to/repo -P scripts/check-docs.cmake
# Fails, naming the file and the link or the method, when
#  - a relative Markdown link in README.md, docs/*.md, models/README.md or a README.md under
#    bench/results/ does not resolve to an existing file or folder (inline links and images `[text](target)`; http(s)/mailto links and pure #anchors are
#    skipped; a #fragment or ?query is stripped; fenced code blocks and inline code are ignored);
#  - a method of the catalogue (a row {"name", Family::... in src/methods/catalogue.cpp)
#    has no section in docs/methods.md (a Markdown heading that names it in backticks);
#  - a link's #anchor (`file.md#anchor` or `#anchor`) matches no heading of the target file
#    (GitHub's rule: lower case, punctuation other than '-' and '_' dropped, spaces -> '-', a
#    repeated heading gets -1, -2, ...);
#  - the README's dependency list (the fenced block after the line
#    `<!-- dependency list: scripts/install-deps.sh -->`: the words after `apt-get install`)
#    differs from the default `packages=(...)` of scripts/install-deps.sh;
#  - a figure of the README's results table (the table after the line
#    `<!-- results table: every figure links its results file -->`) has no link into
#    bench/results/ in its cell (the links themselves are resolved above);
#  - README.md, docs/*.md, models/README.md or a README.md under bench/results/ uses the
#    project's internal vocabulary instead of saying what it means: issue numbers ("issue 14"),
#    work sessions ("the twelfth session", "device session"; HTTP, SSH or training sessions are
#    fine), numbered work parts ("part 13"), "acceptance" (a goal is a goal), "helper".
#    File names and link targets (`device-session.sh`, `...-part12.md`) are not words here.
# The README and docs/*.md get every check; models/README.md and the results READMEs the link,
# anchor and vocabulary checks. Every `dapx SUBCOMMAND --flag` in the docs is checked against
# the built binary by scripts/check-doc-flags.cmake (ctest: docs.flags_exist).
# Plain CMake, so it works before a build and wherever CMake is installed.
cmake_minimum_required(VERSION 3.18)

if(NOT DEFINED ROOT)
  get_filename_component(ROOT "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
endif()
get_filename_component(ROOT "${ROOT}" ABSOLUTE)

# Markdown text is full of ';', '[' and ']', which CMake lists treat specially. They are replaced
# by control characters before any text becomes a list element.
string(ASCII 1 SEMI)
string(ASCII 2 LINK)  # stands for "](" (the start of a link target)

set(errors "")
set(link_count 0)

# Removes fenced code blocks (``` or ~~~ lines) from `text`.
function(strip_fences text out)
  set(result "")
  set(rest "${text}")
  while(TRUE)
    string(REGEX MATCH "(^|\n)[ ]*(```|~~~)" open "${rest}")
    if(open STREQUAL "")
      break()
    endif()
    string(FIND "${rest}" "${open}" at)
    string(SUBSTRING "${rest}" 0 ${at} before)
    string(APPEND result "${before}\n")
    string(LENGTH "${open}" open_len)
    math(EXPR after_open "${at} + ${open_len}")
    string(SUBSTRING "${rest}" ${after_open} -1 rest)
    string(STRIP "${open}" fence)
    # the fence closes at the next line starting with the same marker
    string(FIND "${rest}" "\n${fence}" close)
    if(close EQUAL -1)  # unclosed: the rest of the file is code
      set(rest "")
      break()
    endif()
    math(EXPR after_close "${close} + 4")
    string(SUBSTRING "${rest}" ${after_close} -1 rest)
    # drop the remainder of the closing fence line
    string(FIND "${rest}" "\n" eol)
    if(eol EQUAL -1)
      set(rest "")
    else()
      string(SUBSTRING "${rest}" ${eol} -1 rest)
    endif()
  endwhile()
  string(APPEND result "${rest}")
  set(${out} "${result}" PARENT_SCOPE)
endfunction()

# The lines of file `path` in `out`, empty lines included; ';' -> SEMI, '[' ']' -> LBR RBR.
function(read_lines path out)
  file(READ "${path}" t)
  string(REPLACE ";" "${SEMI}" t "${t}")
  string(REPLACE "\\" "/" t "${t}")  # a '\' would escape the list separator
  string(REPLACE "[" "${LBR}" t "${t}")
  string(REPLACE "]" "${RBR}" t "${t}")
  string(REPLACE "\n" ";" t "${t}")
  set(${out} "${t}" PARENT_SCOPE)
endfunction()

# GitHub's anchors of the headings of Markdown file `md`, in `out` (a list).
function(heading_anchors md out)
  set(anchors "")
  if(EXISTS "${md}")
    file(READ "${md}" t)
    string(REPLACE ";" " " t "${t}")
    string(REPLACE "[" "${LBR}" t "${t}")
    string(REPLACE "]" "${RBR}" t "${t}")
    strip_fences("${t}" t)
    string(REGEX MATCHALL "(^|\n)#+[ \t][^\n]*" hs "${t}")
    foreach(h IN LISTS hs)
      string(REGEX REPLACE "^\n?#+[ \t]+" "" h "${h}")
      string(REGEX REPLACE "[ \t]+#+[ \t]*$" "" h "${h}")  # closing #s
      string(STRIP "${h}" h)
      # a link [text](target) reads as its text
      string(REGEX REPLACE "${LBR}([^${RBR}]*)${RBR}\\([^)]*\\)" "\\1" h "${h}")
      string(TOLOWER "${h}" h)
      string(REGEX REPLACE "[^a-z0-9 _-]" "" h "${h}")
      string(REPLACE " " "-" h "${h}")
      set(a "${h}")
      set(i 0)
      while(TRUE)
        list(FIND anchors "${a}" dup)
        if(dup EQUAL -1)
          break()
        endif()
        math(EXPR i "${i} + 1")
        set(a "${h}-${i}")
      endwhile()
      list(APPEND anchors "${a}")
    endforeach()
  endif()
  set(${out} "${anchors}" PARENT_SCOPE)
endfunction()

# ---- Links and anchors ------------------------------------------------------------------------
string(ASCII 5 LBR)
string(ASCII 6 RBR)
set(anchor_count 0)
file(GLOB doc_files "${ROOT}/docs/*.md")
list(SORT doc_files)
file(GLOB_RECURSE results_readmes "${ROOT}/bench/results/README.md" "${ROOT}/bench/results/*/README.md")
list(SORT results_readmes)
set(md_files "${ROOT}/README.md" ${doc_files})
set(all_md_files ${md_files} "${ROOT}/models/README.md" ${results_readmes})
foreach(md IN LISTS all_md_files)
  file(RELATIVE_PATH md_rel "${ROOT}" "${md}")
  if(NOT EXISTS "${md}")
    string(APPEND errors "  ${md_rel}: file is missing\n")
    continue()
  endif()
  get_filename_component(md_dir "${md}" DIRECTORY)
  file(READ "${md}" text)
  string(REPLACE ";" "${SEMI}" text "${text}")
  strip_fences("${text}" text)
  string(REGEX REPLACE "`[^`\n]*`" "" text "${text}")  # inline code
  string(REPLACE "](" "${LINK}" text "${text}")
  string(REGEX MATCHALL "${LINK}[^)\n]*\\)" targets "${text}")
  foreach(raw IN LISTS targets)
    string(LENGTH "${raw}" len)
    math(EXPR len "${len} - 2")
    string(SUBSTRING "${raw}" 1 ${len} target)  # without the marker and ')'
    string(STRIP "${target}" target)
    string(REGEX REPLACE "[ \t]+\".*$" "" target "${target}")  # [text](path "title")
    string(REGEX REPLACE "^<(.*)>$" "\\1" target "${target}")
    string(REPLACE "${SEMI}" ";" shown "${target}")
    if(target STREQUAL "" OR target MATCHES "^(https?|mailto|ftp):")
      continue()
    endif()
    string(REGEX REPLACE "[#?].*$" "" path "${target}")
    string(REPLACE "${SEMI}" ";" path "${path}")
    string(REPLACE "%20" " " path "${path}")
    if(NOT path STREQUAL "")
      math(EXPR link_count "${link_count} + 1")
      if(IS_ABSOLUTE "${path}")
        string(APPEND errors "  ${md_rel}: link '${shown}' is absolute; use a path relative to the file\n")
        continue()
      elseif(NOT EXISTS "${md_dir}/${path}")
        get_filename_component(resolved "${md_dir}/${path}" ABSOLUTE)
        file(RELATIVE_PATH resolved_rel "${ROOT}" "${resolved}")
        string(APPEND errors "  ${md_rel}: broken link '${shown}' (no file or folder ${resolved_rel})\n")
        continue()
      endif()
    endif()
    # The anchor of a link to a Markdown file (or to this file) names one of its headings.
    if(target MATCHES "#([^?]*)$")
      set(anchor "${CMAKE_MATCH_1}")
      if(path STREQUAL "")
        set(anchor_md "${md}")
      else()
        get_filename_component(anchor_md "${md_dir}/${path}" ABSOLUTE)
      endif()
      if(anchor_md MATCHES "\\.md$" AND NOT IS_DIRECTORY "${anchor_md}")
        math(EXPR anchor_count "${anchor_count} + 1")
        string(MAKE_C_IDENTIFIER "anchors_${anchor_md}" key)
        if(NOT DEFINED ${key})
          heading_anchors("${anchor_md}" ${key})
        endif()
        list(FIND ${key} "${anchor}" found)
        if(found EQUAL -1)
          file(RELATIVE_PATH anchor_rel "${ROOT}" "${anchor_md}")
          string(APPEND errors "  ${md_rel}: link '${shown}': ${anchor_rel} has no heading "
                               "whose anchor is '#${anchor}'\n")
        endif()
      endif()
    endif()
  endforeach()
endforeach()

# ---- Methods ----------------------------------------------------------------------------------
set(method_names "")
set(registry "src/methods/catalogue.cpp")
if(EXISTS "${ROOT}/${registry}")
  file(READ "${ROOT}/${registry}" code)
  # A catalogue row starts {"name", Family::...
  string(REGEX MATCHALL "{\"[^\"]+\",[ \t\n]*Family::" rows "${code}")
  foreach(row IN LISTS rows)
    string(REGEX REPLACE "^{\"([^\"]+)\".*" "\\1" name "${row}")
    list(APPEND method_names "${name}")
  endforeach()
endif()
if(method_names STREQUAL "")
  string(APPEND errors "  ${registry}: no catalogue rows ({\"name\", Family::...}) found\n")
endif()

set(methods_md "${ROOT}/docs/methods.md")
set(headings "")
if(EXISTS "${methods_md}")
  file(READ "${methods_md}" text)
  string(REPLACE ";" "${SEMI}" text "${text}")
  string(REPLACE "[" "(" text "${text}")
  string(REPLACE "]" ")" text "${text}")
  strip_fences("${text}" text)
  string(REGEX MATCHALL "(^|\n)#+[ \t][^\n]*" heading_lines "${text}")
  foreach(h IN LISTS heading_lines)
    string(APPEND headings "${h}\n")
  endforeach()
elseif(NOT method_names STREQUAL "")
  string(APPEND errors "  docs/methods.md is missing: every registered method needs a section there\n")
endif()
if(EXISTS "${methods_md}")
  foreach(name IN LISTS method_names)
    string(FIND "${headings}" "`${name}`" at)
    if(at EQUAL -1)
      string(APPEND errors
             "  docs/methods.md: method '${name}' (registered in ${registry}) has no section; "
             "add a heading that names it, e.g. '## `${name}`'\n")
    endif()
  endforeach()
endif()

# ---- The README's dependency list -------------------------------------------------------------
set(readme "${ROOT}/README.md")
set(deps_script "scripts/install-deps.sh")
set(deps_marker "<!-- dependency list: scripts/install-deps.sh -->")
set(script_packages "")
if(EXISTS "${ROOT}/${deps_script}")
  file(STRINGS "${ROOT}/${deps_script}" script_lines)
  set(script_text "")
  foreach(l IN LISTS script_lines)
    string(REGEX REPLACE "#.*$" "" l "${l}")  # comments
    string(APPEND script_text " ${l}")
  endforeach()
  if(script_text MATCHES "packages=\\(([^)]*)\\)")
    string(REGEX REPLACE "[ \t]+" ";" script_packages "${CMAKE_MATCH_1}")
    list(REMOVE_ITEM script_packages "")
  endif()
endif()
if(script_packages STREQUAL "")
  string(APPEND errors "  ${deps_script}: no packages=(...) list found\n")
endif()
set(readme_packages "")
if(EXISTS "${readme}")
  file(READ "${readme}" text)
  string(REPLACE ";" "${SEMI}" text "${text}")
  string(FIND "${text}" "${deps_marker}" at)
  if(at EQUAL -1)
    string(APPEND errors "  README.md: no line '${deps_marker}' before the dependency list\n")
  else()
    string(SUBSTRING "${text}" ${at} -1 rest)
    # the fenced block after the marker
    if(rest MATCHES "\n[ ]*```[^\n]*\n(.*)")
      set(block "${CMAKE_MATCH_1}")
      string(FIND "${block}" "\n```" close)
      if(NOT close EQUAL -1)
        string(SUBSTRING "${block}" 0 ${close} block)
      endif()
      string(REGEX REPLACE "\\\\[ \t]*\n" " " block "${block}")  # continued lines
      string(REGEX REPLACE "#[^\n]*" "" block "${block}")
      if(block MATCHES "apt-get[ \t]+install([^\n]*)")
        string(REGEX REPLACE "[ \t]+" ";" words "${CMAKE_MATCH_1}")
        foreach(w IN LISTS words)
          if(NOT w STREQUAL "" AND NOT w MATCHES "^-")
            list(APPEND readme_packages "${w}")
          endif()
        endforeach()
      endif()
    endif()
    if(readme_packages STREQUAL "")
      string(APPEND errors "  README.md: the fenced block after '${deps_marker}' has no "
                           "'apt-get install PACKAGE...' line\n")
    endif()
  endif()
endif()
if(NOT readme_packages STREQUAL "" AND NOT script_packages STREQUAL "")
  set(missing ${script_packages})
  list(REMOVE_ITEM missing ${readme_packages})
  set(extra ${readme_packages})
  list(REMOVE_ITEM extra ${script_packages})
  if(missing)
    string(REPLACE ";" " " missing "${missing}")
    string(APPEND errors "  README.md: the dependency list lacks '${missing}' (in the packages=(...) "
                         "of ${deps_script})\n")
  endif()
  if(extra)
    string(REPLACE ";" " " extra "${extra}")
    string(APPEND errors "  README.md: the dependency list names '${extra}', which the packages=(...) "
                         "of ${deps_script} does not\n")
  endif()
endif()

# ---- The README's results table ---------------------------------------------------------------
set(results_marker "<!-- results table: every figure links its results file -->")
set(figure_count 0)
if(EXISTS "${readme}")
  read_lines("${readme}" readme_lines)
  set(state "before")  # before the marker, then "table" while its rows last
  set(row 0)
  foreach(line IN LISTS readme_lines)
    if(state STREQUAL "before")
      string(FIND "${line}" "${results_marker}" at)
      if(NOT at EQUAL -1)
        set(state "seek")
      endif()
      continue()
    endif()
    string(STRIP "${line}" l)
    if(NOT l MATCHES "^\\|")
      if(state STREQUAL "table")
        break()
      endif()
      if(NOT l STREQUAL "")
        break()  # the table must follow the marker
      endif()
      continue()
    endif()
    set(state "table")
    math(EXPR row "${row} + 1")
    if(row LESS 3)
      continue()  # header and separator
    endif()
    string(REGEX REPLACE "^\\|(.*)\\|$" "\\1" l "${l}")
    string(REPLACE "|" ";" cells "${l}")
    list(REMOVE_AT cells 0)  # the row's name
    foreach(cell IN LISTS cells)
      if(cell MATCHES "[0-9]")
        math(EXPR figure_count "${figure_count} + 1")
        if(NOT cell MATCHES "${RBR}\\((\\.\\./)*bench/results/[^)]+\\)")
          string(REPLACE "${LBR}" "[" shown "${cell}")
          string(REPLACE "${RBR}" "]" shown "${shown}")
          string(REPLACE "${SEMI}" ";" shown "${shown}")
          string(STRIP "${shown}" shown)
          string(APPEND errors "  README.md: results table figure '${shown}' does not link its "
                               "results file under bench/results/\n")
        endif()
      endif()
    endforeach()
  endforeach()
  if(state STREQUAL "before")
    string(APPEND errors "  README.md: no line '${results_marker}' before the results table\n")
  elseif(figure_count EQUAL 0)
    string(APPEND errors "  README.md: no results table (with figures) right after '${results_marker}'\n")
  endif()
endif()

# ---- Internal vocabulary ----------------------------------------------------------------------
# Each pattern starts at a word boundary that a file name does not give (device-session.sh,
# analyze-4096-part12.md); link targets are dropped before the search.
set(vocab_patterns
    "[Ii]ssues?[ -]?#?[0-9]+"
    "[Pp]arts?[ -][0-9]+"
    "[Aa]cceptance"
    "[Hh]elpers?"
    "([A-Za-z]+[ ]+)?[Ss]essions?")
set(session_ok "http;https;tls;ssh;login;user;browser;training;tmux;screen;interactive;terminal;shell;chat;web")
set(vocab_count 0)
foreach(md IN LISTS all_md_files)
  if(NOT EXISTS "${md}")
    continue()
  endif()
  file(RELATIVE_PATH md_rel "${ROOT}" "${md}")
  read_lines("${md}" md_lines)
  set(n 0)
  foreach(line IN LISTS md_lines)
    math(EXPR n "${n} + 1")
    string(REGEX REPLACE "${RBR}\\([^)]*\\)" "${RBR}" line "${line}")  # link targets
    foreach(pat IN LISTS vocab_patterns)
      string(REGEX MATCHALL "(^|[^A-Za-z0-9_./-])${pat}([^A-Za-z0-9_-]|$)" hits "${line}")
      foreach(hit IN LISTS hits)
        string(REGEX REPLACE "^[^A-Za-z]+" "" word "${hit}")
        string(REGEX REPLACE "[^A-Za-z0-9]+$" "" word "${word}")
        if(pat MATCHES "Ss]ession")
          if(word MATCHES "^([A-Za-z]+)[ ]+[Ss]ession")
            string(TOLOWER "${CMAKE_MATCH_1}" before)
            list(FIND session_ok "${before}" ok)
            if(NOT ok EQUAL -1)
              continue()
            endif()
          endif()
        endif()
        math(EXPR vocab_count "${vocab_count} + 1")
        string(APPEND errors "  ${md_rel}:${n}: internal vocabulary '${word}': say what it means "
                             "(a date, a machine, a goal, a GPU run) instead\n")
      endforeach()
    endforeach()
  endforeach()
endforeach()

# ---- The README's length: a first-time reader's page, under 150 lines -------------------------
file(READ "${ROOT}/README.md" readme_text)
string(REGEX REPLACE "[^\n]" "" readme_newlines "${readme_text}")  # (a ';' would split a list)
string(LENGTH "${readme_newlines}" readme_count)
if(readme_count GREATER_EQUAL 150)
  string(APPEND errors "  README.md: ${readme_count} lines; keep it under 150 (move details to docs/)\n")
endif()

list(LENGTH md_files file_count)
list(LENGTH method_names method_count)
if(NOT errors STREQUAL "")
  message(FATAL_ERROR "docs check failed:\n${errors}")
endif()
list(LENGTH all_md_files all_count)
list(LENGTH script_packages package_count)
message(STATUS "docs check: README.md ${readme_count} lines; ${link_count} relative links and ${anchor_count} anchors in ${all_count} "
               "files resolve; all ${method_count} registered methods have a section in "
               "docs/methods.md; the README names the ${package_count} packages of install-deps.sh; "
               "its results table's ${figure_count} figures link their results; no internal vocabulary")
