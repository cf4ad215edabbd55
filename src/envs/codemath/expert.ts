/** The code/math expert: a Python program per problem, run once, then the printed answer. */
import type { Demonstration, Expert } from '../types.ts';
import type { CodeMathTask, ProblemParams } from './generator.ts';

/**
 * The code/math expert: writes a Python program that computes the answer from the problem's
 * numbers and prints it, runs it (one `<python>` step), then answers with the printed value.
 * Its `answer` is the generator's ground truth, so a demonstration is only right if the program
 * prints the same thing; the tests run the programs through the real Python tool to check that.
 */
export class CodeMathExpert implements Expert<CodeMathTask> {
  demonstrate(task: CodeMathTask): Demonstration {
    return {
      actions: [
        `<python>\n${expertProgram(task.payload.params)}\n</python>`,
        `<answer>${task.payload.answer}</answer>`,
      ],
    };
  }
}

/** The Python source that prints a problem's answer. */
export function expertProgram(p: ProblemParams): string {
  switch (p.kind) {
    case 'product':
      return `print(${p.factors.join(' * ')})`;
    case 'sum':
      return `print(sum([${p.terms.join(', ')}]))`;
    case 'percentage':
      return [
        'from decimal import Decimal, getcontext',
        'getcontext().prec = 80',
        `x = Decimal('${p.percent}') * Decimal('${p.of}') / 100`,
        "print(format(x.normalize(), 'f'))",
      ].join('\n');
    case 'unit':
      return [
        'from decimal import Decimal, getcontext',
        'getcontext().prec = 80',
        `# 1 ${p.from} = ${p.factor} ${p.to}`,
        `x = Decimal('${p.value}') * Decimal('${p.factor}')`,
        "print(format(x.normalize(), 'f'))",
      ].join('\n');
    case 'base':
      return p.direction === 'from'
        ? `print(int('${p.value}', ${p.base}))`
        : [
            `n, base = ${p.value}, ${p.base}`,
            "digits = '0123456789abcdefghijklmnopqrstuvwxyz'",
            "out = ''",
            'while n > 0:',
            '    n, r = divmod(n, base)',
            '    out = digits[r] + out',
            "print(out or '0')",
          ].join('\n');
    case 'date': {
      const [a, b] = [p.from, p.to].map((d) => d.split('-').map(Number).join(', '));
      return ['from datetime import date', `print((date(${b}) - date(${a})).days)`].join('\n');
    }
    case 'count':
      return p.variant === 'divisible'
        ? `print(sum(1 for n in range(${p.lo}, ${p.hi} + 1) if n % ${p.k} == 0 and n % ${p.m} != 0))`
        : `print(sum(str(i).count('${p.digit}') for i in range(1, ${p.n} + 1)))`;
  }
}
