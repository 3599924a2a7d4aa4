# Copies the model directory FROM to TO, then writes CONTENT to the file TO/FILE: a variant of
# the test model with one file changed.
file(REMOVE_RECURSE ${TO})
file(COPY ${FROM}/ DESTINATION ${TO})
file(WRITE ${TO}/${FILE} "${CONTENT}")
