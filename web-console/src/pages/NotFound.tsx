import { href } from '../lib/router';
import { Empty } from '../components/States';

export function NotFound() {
  return (
    <Empty title="This page does not exist">
      <a href={href('/')}>Back to the overview</a>
    </Empty>
  );
}
