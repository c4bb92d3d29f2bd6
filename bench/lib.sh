# bench/lib.sh: what the benchmarks share, sourced after test/lib.sh.
psql() { command psql -qX -v ON_ERROR_STOP=1 "$@"; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.4f\", $1 }"; }
ratio() { awk "BEGIN { printf \"%.2f\", $1 / $2 }"; }
fmt() { printf "%8.2f" "$1"; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# Seconds that the rows between fractions a and b of total took, by linear
# interpolation over samples "rows|seconds" (file $1, a $2, b $3, total $4)
# from the start.
span() {
    awk -F '|' -v a="$2" -v b="$3" -v total="$4" '
        function at(r,   i) {
            for (i = 1; i <= n; i++)
                if (R[i] >= r)
                    return (i == 1 || R[i] == R[i-1]) ? E[i] : E[i-1] + (E[i] - E[i-1]) * (r - R[i-1]) / (R[i] - R[i-1]);
            return E[n];
        }
        BEGIN { n = 1; R[1] = 0; E[1] = 0 }
        NF >= 2 { n++; R[n] = $1; E[n] = $2 }
        END { if (n < 2) print "n/a"; else printf "%.3f\n", at(b * total) - at(a * total) }' "$1"
}

# The largest third field of samples "rows|seconds|RssAnon" (file $1).
peak() { awk -F '|' '$3 != "" && $3 + 0 > m {m = $3 + 0} END {print m + 0}' "$1"; }
