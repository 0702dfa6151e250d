# cmake -DIN=src.proto -DOUT=dst.proto -P strip_gogo.cmake
# Drops gogoproto (the weak import, `option (gogoproto.x) = y;` lines and
# `[(gogoproto.x) = y, ...]` field options) so protoc's C++ generator accepts
# containerd's protos. Nothing else changes: wire format is unaffected.
file(READ ${IN} text)
string(REGEX REPLACE "import weak \"gogoproto/gogo.proto\";[^\n]*\n" "" text "${text}")
string(REGEX REPLACE "[ \t]*option[ \t]*\\(gogoproto\\.[^;]*;[^\n]*\n" "" text "${text}")
string(REGEX REPLACE "[ \t]*\\[[ \t]*\\(gogoproto\\.[^]]*\\]" "" text "${text}")
if(text MATCHES "gogoproto")
  message(FATAL_ERROR "${IN}: gogoproto left after stripping; update strip_gogo.cmake")
endif()
get_filename_component(dir ${OUT} DIRECTORY)
file(MAKE_DIRECTORY ${dir})
file(WRITE ${OUT}.tmp "${text}")
file(RENAME ${OUT}.tmp ${OUT})
